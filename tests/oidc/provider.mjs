// A real OpenID provider for the end-to-end tests: oidc-provider (an OpenID Certified
// implementation) with test users, a login form that checks their passwords, a consent page,
// and three clients. Not for production: everything lives in memory and the keys are made at
// start.
//
//   node provider.mjs [--port N] [--users FILE] [--approvals-redirect-uri URI]...
//                     [--access-token-ttl SECONDS] [--access-token-alg RS256|ES256]
//                     [--request-log FILE]
//
// Every option can also come from the environment (the option wins):
//   MCP_LP_OIDC_PORT                    port on 127.0.0.1; 0 (the default) picks a free one
//   MCP_LP_OIDC_USERS                   JSON file: [{"email", "password", "scopes": [..]}, ...]
//   MCP_LP_OIDC_APPROVALS_REDIRECT_URIS redirect URIs of mcp-lp-approvals, separated by spaces
//   MCP_LP_OIDC_APPROVALS_SECRET        client secret of mcp-lp-approvals
//   MCP_LP_OIDC_SERVICE_SECRET          client secret of mcp-service
//   MCP_LP_OIDC_SERVICE_SCOPES          scopes mcp-service may obtain, separated by spaces
//   MCP_LP_OIDC_ACCESS_TOKEN_TTL        access token lifetime in seconds (default 3600)
//   MCP_LP_OIDC_ACCESS_TOKEN_ALG        access token signature algorithm (default RS256)
//   MCP_LP_OIDC_REGISTRATION_TOKEN      enables dynamic client registration (RFC 7591) at /reg
//                                       for requests bearing this initial access token
//   MCP_LP_OIDC_REQUEST_LOG             a file to which every request received is appended, one
//                                       JSON line {"method", "path"} each, before it is answered
//
// The issuer is http://127.0.0.1:PORT. oidc-provider has no production switch that refuses
// http: the issuer is taken as given and cookies are marked Secure only on https requests, so
// loopback http works as is. Once listening it prints one JSON line to stdout:
//   {"issuer": ..., "jwks_uri": ..., "port": ...}
// See README.md for the users, the clients and the flows.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const DEFAULT_USERS = [
  // Requests destructive calls.
  { email: 'alice@example.com', password: 'alice-password', scopes: ['docs:delete', 'records:write', 'notes:delete'] },
  // Approves them, and holds no destructive grant himself.
  { email: 'bob@example.com', password: 'bob-password', scopes: ['docs:approve', 'records:approve', 'notes:approve'] },
  // Holds both: may request and approve (her own calls only where configured).
  {
    email: 'carol@example.com',
    password: 'carol-password',
    scopes: ['docs:delete', 'docs:approve', 'records:write', 'records:approve', 'notes:delete', 'notes:approve'],
  },
  // Signs in, holds nothing.
  { email: 'dave@example.com', password: 'dave-password', scopes: [] },
];

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    users: { type: 'string' },
    'approvals-redirect-uri': { type: 'string', multiple: true },
    'access-token-ttl': { type: 'string' },
    'access-token-alg': { type: 'string' },
    'request-log': { type: 'string' },
  },
});

function fail(message) {
  process.stderr.write(`provider.mjs: error: ${message}\n`);
  process.exit(2);
}

const env = process.env;
const port = Number(args.port ?? env.MCP_LP_OIDC_PORT ?? '0');
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`port \`${args.port ?? env.MCP_LP_OIDC_PORT}\` is not a TCP port`);
const accessTokenTTL = Number(args['access-token-ttl'] ?? env.MCP_LP_OIDC_ACCESS_TOKEN_TTL ?? '3600');
if (!Number.isInteger(accessTokenTTL) || accessTokenTTL < 1) fail('the access token lifetime is a whole number of seconds, at least 1');
const accessTokenAlg = args['access-token-alg'] ?? env.MCP_LP_OIDC_ACCESS_TOKEN_ALG ?? 'RS256';
if (!['RS256', 'ES256'].includes(accessTokenAlg)) fail(`access token algorithm \`${accessTokenAlg}\` is not RS256 or ES256`);
const approvalsRedirectUris = args['approvals-redirect-uri']
  ?? (env.MCP_LP_OIDC_APPROVALS_REDIRECT_URIS ?? '').split(' ').filter(Boolean);
const approvalsSecret = env.MCP_LP_OIDC_APPROVALS_SECRET ?? 'mcp-lp-approvals-test-secret';
const serviceSecret = env.MCP_LP_OIDC_SERVICE_SECRET ?? 'mcp-service-test-secret';
const registrationToken = env.MCP_LP_OIDC_REGISTRATION_TOKEN || undefined;
const requestLog = args['request-log'] ?? env.MCP_LP_OIDC_REQUEST_LOG ?? '';
const serviceScopes = (env.MCP_LP_OIDC_SERVICE_SCOPES ?? 'docs:delete records:write notes:delete').split(' ').filter(Boolean).join(' ');

function loadUsers() {
  const file = args.users ?? env.MCP_LP_OIDC_USERS;
  if (!file) return DEFAULT_USERS;
  let list;
  try {
    list = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    fail(`cannot read users from ${file}: ${e.message}`);
  }
  if (!Array.isArray(list)) fail(`${file}: expected a JSON array of users`);
  list.forEach((u, i) => {
    if (typeof u?.email !== 'string' || !u.email || typeof u.password !== 'string' || !u.password
      || !Array.isArray(u.scopes) || !u.scopes.every((s) => typeof s === 'string' && /^[^\s"\\]+$/.test(s))) {
      fail(`${file}: user [${i}] needs "email" and "password" (non-empty strings) and "scopes" (strings without spaces)`);
    }
  });
  return list;
}

const users = new Map(loadUsers().map((u) => [u.email, u]));
// Every scope a resource server (an MCP server) accepts: all that any user or the service holds.
const resourceScopes = new Set([...users.values()].flatMap((u) => u.scopes).concat(serviceScopes.split(' ').filter(Boolean)));

// The signing keys, made for this run: RS256 (ID tokens, and access tokens by default) and ES256.
function signingKey(kid, alg, type, options) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa-1', 'RS256', 'rsa', { modulusLength: 2048 }),
    signingKey('ec-1', 'ES256', 'ec', { namedCurve: 'P-256' }),
  ],
};

function isLoopbackResource(indicator) {
  const url = URL.parse(indicator);
  return url !== null && (url.protocol === 'http:' || url.protocol === 'https:')
    && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) && !url.username && !url.password && !url.hash;
}

function html(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${html(title)}</title></head>`
    + `<body><h1>${html(title)}</h1>${body}</body></html>`;
}

function send(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function passwordMatches(user, given) {
  // Compare digests, so the comparison takes the same time whatever the lengths.
  const digest = (s) => crypto.createHash('sha256').update(s, 'utf8').digest();
  return user !== undefined && crypto.timingSafeEqual(digest(user.password), digest(given));
}

function loginForm(uid, clientId, { error, email = '' } = {}) {
  return page('Sign in', `<p>Signing in to <strong id="client">${html(clientId)}</strong>.</p>`
    + (error ? `<p id="error" role="alert">${html(error)}</p>` : '')
    + `<form id="login" method="post" action="/interaction/${html(uid)}/login">`
    + `<label>Email <input type="email" name="login" value="${html(email)}" autocomplete="username" required autofocus></label>`
    + '<label>Password <input type="password" name="password" autocomplete="current-password" required></label>'
    + '<button type="submit">Sign in</button></form>'
    + `<p><a href="/interaction/${html(uid)}/abort">Cancel</a></p>`);
}

function consentForm(uid, clientId, accountId, granted, refused) {
  const list = (scopes) => (scopes.length ? scopes.map((s) => `<li>${html(s)}</li>`).join('') : '<li>(none)</li>');
  return page('Authorize', `<p><strong id="account">${html(accountId)}</strong>, allow `
    + `<strong id="client">${html(clientId)}</strong> to act with:</p><ul id="granted">${list(granted)}</ul>`
    + (refused.length ? `<p>Requested but not held (left out):</p><ul id="refused">${list(refused)}</ul>` : '')
    + `<form id="consent" method="post" action="/interaction/${html(uid)}/confirm">`
    + '<button type="submit">Allow</button></form>'
    + `<form method="post" action="/interaction/${html(uid)}/abort"><button type="submit">Deny</button></form>`);
}

// What the consent prompt asks for, split by what the signed-in user holds: the OpenID scopes
// and claims are granted; a resource scope only if the user holds it, else it is rejected, so
// the access token's `scope` is the requested scopes the user holds.
function splitConsent(details, user) {
  const granted = [...(details.missingOIDCScope ?? [])];
  const refused = [];
  for (const scopes of Object.values(details.missingResourceScopes ?? {})) {
    for (const scope of scopes) (user.scopes.includes(scope) ? granted : refused).push(scope);
  }
  return { granted: [...new Set(granted)], refused: [...new Set(refused)] };
}

// The login and consent pages oidc-provider sends the browser to (`interactions.url`).
async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  // The interaction cookie names the interaction; the URL must name the same one.
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p>This sign-in page belongs to another sign-in; start again.</p>'));
    return;
  }
  const { prompt, params, session } = details;
  const clientId = params.client_id;

  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the user cancelled',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (prompt.name === 'login') {
    if (action === '' && req.method === 'GET') {
      send(res, 200, loginForm(uid, clientId));
      return;
    }
    if (action === 'login' && req.method === 'POST') {
      const form = await readForm(req);
      const email = form.get('login') ?? '';
      const user = users.get(email);
      if (!passwordMatches(user, form.get('password') ?? '')) {
        send(res, 401, loginForm(uid, clientId, { error: 'Wrong email or password.', email }));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: user.email } }, { mergeWithLastSubmission: false });
      return;
    }
  }

  if (prompt.name === 'consent') {
    const user = users.get(session?.accountId);
    if (!user) {
      send(res, 400, page('Error', '<p>No signed-in user.</p>'));
      return;
    }
    const { granted, refused } = splitConsent(prompt.details, user);
    if (action === '' && req.method === 'GET') {
      send(res, 200, consentForm(uid, clientId, user.email, granted, refused));
      return;
    }
    if (action === 'confirm' && req.method === 'POST') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: user.email, clientId });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
        const held = scopes.filter((s) => user.scopes.includes(s));
        const notHeld = scopes.filter((s) => !user.scopes.includes(s));
        if (held.length) grant.addResourceScope(indicator, held.join(' '));
        if (notHeld.length) grant.rejectResourceScope(indicator, notHeld.join(' '));
      }
      const grantId = await grant.save();
      const consent = details.grantId ? {} : { grantId };
      await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
      return;
    }
  }

  send(res, 400, page('Error', `<p>Nothing to do here for the ${html(prompt.name)} step.</p>`));
}

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const boundPort = server.address().port;
const issuer = `http://127.0.0.1:${boundPort}`;

const provider = new Provider(issuer, {
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount(ctx, sub) {
    const user = users.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.email,
      async claims() {
        return { sub: user.email, email: user.email, email_verified: true };
      },
    };
  },
  scopes: ['openid', 'email', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  clients: [
    {
      // The MCP server's approval page: a web application signing approvers in.
      client_id: 'mcp-lp-approvals',
      client_secret: approvalsSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: approvalsRedirectUris,
    },
    {
      // What the tests sign users in with to call MCP servers: a public client, like an MCP client.
      client_id: 'mcp-test-client',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/mcp-test-client/callback'],
    },
    {
      // A service principal: client credentials, its `sub` is its client id.
      client_id: 'mcp-service',
      client_secret: serviceSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  pkce: { required: () => true },
  clientBasedCORS: () => false,
  interactions: { url: (ctx, i) => `/interaction/${i.uid}` },
  ttl: { AccessToken: accessTokenTTL, ClientCredentials: accessTokenTTL },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // More clients like mcp-lp-approvals, registered once a server's port is known.
    registration: { enabled: registrationToken !== undefined, initialAccessToken: registrationToken ?? false },
    resourceIndicators: {
      enabled: true,
      // The resource named at authorization is the audience when the token request omits it.
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator, client) {
        // Any MCP server on this machine (their ports are picked at random by the tests).
        if (!isLoopbackResource(indicator)) {
          throw new errors.InvalidTarget(`${indicator} is not a resource on loopback`);
        }
        return {
          // What a token for this resource may carry: the service's own scopes for it, and for
          // users any scope (the consent step then keeps only those the user holds).
          scope: client.clientId === 'mcp-service' ? serviceScopes : [...resourceScopes].join(' '),
          audience: indicator,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: accessTokenAlg } },
        };
      },
    },
  },
});

const providerCallback = provider.callback();
server.on('request', async (req, res) => {
  // Written before the request is answered, so that whoever got an answer finds it logged.
  if (requestLog) fs.appendFileSync(requestLog, `${JSON.stringify({ method: req.method, path: req.url })}\n`);
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/.exec(req.url.split('?')[0]);
  if (!match) {
    providerCallback(req, res);
    return;
  }
  try {
    await interaction(provider, req, res, match[1], match[2] ?? '');
  } catch (err) {
    const status = err instanceof errors.SessionNotFound ? 400 : 500;
    if (status === 500) process.stderr.write(`provider.mjs: ${err.stack}\n`);
    if (!res.headersSent) send(res, status, page('Error', `<p>${html(err.message)}</p>`));
  }
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

process.stdout.write(`${JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, port: boundPort })}\n`);
