// notes-server driven by the official MCP TypeScript SDK's 2.x client (@modelcontextprotocol/client),
// in both of its protocol modes: `auto`, which probes with `server/discover` and settles on
// stateless 2026-07-28 (multi-round-trip results included), and `legacy`, the 2025-11-25
// `initialize` handshake. Over stdio with grants from the configuration, and over streamable HTTP
// as an OAuth resource server with grants from the token's scopes. Run by scripts/ts-tests.sh.

import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  Client,
  InsufficientScopeError,
  ProtocolError,
  SdkHttpError,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

import { Fixtures, notesServerBinary } from './fixtures.mjs';

const FORBIDDEN = -32003;
const INVALID_PARAMS = -32602;
const CLIENT_INFO = { name: 'mcp-lp-typescript-tests', version: '0' };
const CLIENT_ID = 'mcp-lp-typescript-tests';

const MODERN = { mode: 'auto', version: '2026-07-28', era: 'modern' };
const LEGACY = { mode: 'legacy', version: '2025-11-25', era: 'legacy' };
// No probe-and-fallback: connect fails unless `server/discover` offers exactly this revision.
const PINNED = { mode: { pin: '2026-07-28' } };

const ALL_TOOLS = ['delete_note', 'list_notes', 'preview_note', 'read_note'];
const WITHOUT_DELETE = ['list_notes', 'preview_note', 'read_note'];
// notes-server's preview length when the client is not asked.
const DEFAULT_PREVIEW_LINES = 5;

let fixtures;
before(() => {
  fixtures = Fixtures.start();
});
after(async () => {
  await fixtures?.stop();
});

const note = (notes, name) => join(notes, `${name}.md`);
const textOf = (result) =>
  result.content
    .filter((block) => block.type === 'text')
    .map((block) => block.text)
    .join('\n');
/** The first `n` lines of a note, as notes-server cuts them: a final line break ends the last
 * line rather than starting another, and the lines are rejoined with `\n`. */
function firstLines(notes, name, n) {
  const lines = readFileSync(note(notes, name), 'utf8').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(0, n).join('\n');
}
const toolNames = async (client) => (await client.listTools()).tools.map((tool) => tool.name).sort();
const decisions = (events) => events.map((e) => [e.principal, e.tool, e.decision, e.outcome]);
const question = (name) => `How many lines of \`${name}\` should be shown?`;

/**
 * The 2.x client in `mode`, declaring form elicitation: its handler answers `lines` (or declines
 * when `lines` is undefined) and records each question in `client.questions`.
 */
function newClient(mode, lines) {
  const client = new Client(CLIENT_INFO, {
    versionNegotiation: { mode },
    capabilities: { elicitation: { form: {} } },
  });
  client.questions = [];
  client.setRequestHandler('elicitation/create', async (request) => {
    client.questions.push(request.params);
    return lines === undefined ? { action: 'decline' } : { action: 'accept', content: { lines } };
  });
  return client;
}

/**
 * Records the JSON-RPC messages the client sends and receives on a connected transport, so a test
 * can check what went over the wire: the client's retry must echo the sealed state it was handed.
 */
function recordWire(transport) {
  const wire = { sent: [], received: [] };
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    wire.sent.push(structuredClone(message));
    return send(message, options);
  };
  const onmessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    wire.received.push(structuredClone(message));
    onmessage?.(message, extra);
  };
  return wire;
}

/** The `preview_note` round trips on the wire: each request with the answer to it. */
function previewRounds(wire) {
  return wire.sent
    .filter((m) => m.method === 'tools/call' && m.params?.name === 'preview_note')
    .map((request) => ({ request, response: wire.received.find((m) => m.id === request.id && !m.method) }));
}

/** Flips one character in the middle of a sealed state. */
function tamper(sealed) {
  const i = sealed.length >> 1;
  return `${sealed.slice(0, i)}${sealed[i] === 'A' ? 'B' : 'A'}${sealed.slice(i + 1)}`;
}

/** The 2.x client connected to notes-server over stdio; the server's stderr goes to `errlog`. */
async function connectStdio({ config, errlog }, mode, lines) {
  const stderr = openSync(errlog, 'w');
  const transport = new StdioClientTransport({ command: notesServerBinary(), args: ['--config', config], stderr });
  const client = newClient(mode, lines);
  try {
    await client.connect(transport);
  } catch (error) {
    closeSync(stderr);
    throw error;
  }
  return {
    client,
    transport,
    wire: recordWire(transport),
    close: async () => {
      await client.close();
      closeSync(stderr);
    },
  };
}

/**
 * An OAuth client as the 2.x SDK sees one: a registered client id and the current access token,
 * stamped with the authorization server that issued it (SEP-2352). It records the authorization
 * requests the SDK sends the user to instead of following them.
 */
class RecordingOAuthProvider {
  constructor(issuer, accessToken) {
    this.issuer = issuer;
    this.stored = accessToken ? { access_token: accessToken, token_type: 'Bearer', issuer } : undefined;
    this.authorizations = [];
  }
  get redirectUrl() {
    return 'http://127.0.0.1/oauth/callback';
  }
  get clientMetadata() {
    return { client_name: CLIENT_INFO.name, redirect_uris: [this.redirectUrl], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return { client_id: CLIENT_ID };
  }
  tokens() {
    return this.stored;
  }
  saveTokens(tokens) {
    this.stored = { issuer: this.issuer, ...tokens };
  }
  redirectToAuthorization(url) {
    this.authorizations.push(new URL(url));
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

async function connectHttp(url, mode, { authProvider, lines, onInsufficientScope } = {}) {
  const options = {};
  if (authProvider) options.authProvider = authProvider;
  if (onInsufficientScope) options.onInsufficientScope = onInsufficientScope;
  const transport = new StreamableHTTPClientTransport(new URL(url), options);
  const client = newClient(mode, lines);
  await client.connect(transport);
  return { client, transport, wire: recordWire(transport) };
}

/** The one authorization request the SDK made, checked against the server's challenge. */
function assertAuthorizationRequest(provider, server, scope) {
  assert.equal(provider.authorizations.length, 1, `authorization requests: ${provider.authorizations.join(', ')}`);
  const [request] = provider.authorizations;
  assert.equal(`${request.origin}${request.pathname}`, `${server.issuer}/authorize`);
  assert.equal(request.searchParams.get('response_type'), 'code');
  assert.equal(request.searchParams.get('client_id'), CLIENT_ID);
  assert.equal(request.searchParams.get('code_challenge_method'), 'S256');
  // RFC 8707: the token is asked for this server, as its protected resource metadata names it.
  assert.equal(request.searchParams.get('resource'), server.url);
  assert.equal(request.searchParams.get('scope'), scope);
}

function assertNegotiated(client, { version, era }) {
  assert.equal(client.getNegotiatedProtocolVersion(), version);
  assert.equal(client.getProtocolEra(), era);
  assert.equal(client.getServerVersion()?.name, 'notes-server');
}

function assertForbidden(error) {
  assert.ok(error instanceof ProtocolError, error);
  assert.equal(error.code, FORBIDDEN);
  assert.match(error.message, /tool `delete_note` requires grant `notes:delete`/);
  return true;
}

/**
 * The 2026-07-28 client answered `{lines: 1}` and retried by itself: the answer is the note's first
 * line, the question was asked once, and the retry carried the answer and the sealed state the
 * server handed out, byte for byte.
 */
function assertAnsweredPreview(client, wire, notes, result) {
  assert.equal(result.isError, false, textOf(result));
  assert.equal(textOf(result), firstLines(notes, 'welcome', 1));
  assert.deepEqual(
    client.questions.map((q) => [q.mode, q.message, q.requestedSchema.properties.lines.type]),
    [['form', question('welcome'), 'integer']],
  );
  const [asked, answered, ...more] = previewRounds(wire);
  assert.equal(more.length, 0, 'one question, one retry');
  assert.equal(asked.request.params.requestState, undefined);
  const sealed = asked.response.result.requestState;
  assert.equal(asked.response.result.resultType, 'input_required');
  assert.equal(typeof sealed, 'string');
  assert.notEqual(sealed, 'asked-lines', 'the state left the server sealed');
  assert.deepEqual(answered.request.params.arguments, { name: 'welcome' });
  assert.equal(answered.request.params.requestState, sealed);
  assert.deepEqual(answered.request.params.inputResponses, { lines: { action: 'accept', content: { lines: 1 } } });
}

/** The audit of the two rounds: asked, then answered with the same arguments. */
function assertAuditedPreview(events, principal) {
  const rounds = events.filter((e) => e.tool === 'preview_note');
  assert.deepEqual(decisions(rounds), [
    [principal, 'preview_note', 'allow', 'input_required'],
    [principal, 'preview_note', 'allow', 'ok'],
  ]);
  const [asked, answered] = rounds;
  assert.equal(asked.input_sha256, undefined, 'the first round carries no answers');
  assert.equal(answered.input_sha256.length, 64, "the retry's answers and state are digested");
  assert.equal(answered.args_sha256, asked.args_sha256, 'both rounds are the same call');
}

/** A manual first round: the client hands the InputRequiredResult back instead of answering it. */
async function askedManually(client) {
  const asked = await client.callTool(
    { name: 'preview_note', arguments: { name: 'welcome' } },
    { allowInputRequired: true },
  );
  assert.equal(asked.resultType, 'input_required', JSON.stringify(asked));
  assert.equal(asked.inputRequests.lines.method, 'elicitation/create');
  assert.equal(asked.inputRequests.lines.params.message, question('welcome'));
  assert.equal(typeof asked.requestState, 'string');
  return asked;
}

/** A manual retry with a tampered state is refused before the tool runs. */
async function assertTamperedRetryRefused(client) {
  const asked = await askedManually(client);
  const retry = (requestState) =>
    client.callTool(
      {
        name: 'preview_note',
        arguments: { name: 'welcome' },
        inputResponses: { lines: { action: 'accept', content: { lines: 1 } } },
        requestState,
      },
      { allowInputRequired: true },
    );
  await assert.rejects(retry(tamper(asked.requestState)), (error) => {
    assert.ok(error instanceof ProtocolError, error);
    assert.equal(error.code, INVALID_PARAMS);
    assert.match(error.message, /the requestState sent to tool `preview_note` was refused/);
    assert.deepEqual(error.data, { code: 'state_rejected', tool: 'preview_note', request_state: 'tampered' });
    return true;
  });
  // The state as sealed is still accepted: only the tampering was refused.
  return retry(asked.requestState);
}

describe('@modelcontextprotocol/client 2.x: notes-server over stdio, 2026-07-28 (auto)', () => {
  test('hides and refuses delete_note without a grant', async () => {
    const ws = await fixtures.stdio([]);
    const { client, close } = await connectStdio(ws, MODERN.mode);
    try {
      assertNegotiated(client, MODERN);
      assert.deepEqual(await toolNames(client), WITHOUT_DELETE);
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } }), assertForbidden);
    } finally {
      await close();
    }
    assert.ok(existsSync(note(ws.notes, 'q3-plan')), 'a refused delete removed the note');
    assert.deepEqual(decisions(await fixtures.audit(ws.errlog)), [
      ['alice@example.com', 'delete_note', 'deny', 'denied'],
    ]);
  });

  test('accepts delete_note with the notes:delete grant', async () => {
    const ws = await fixtures.stdio(['notes:delete']);
    const { client, close } = await connectStdio(ws, MODERN.mode);
    try {
      assertNegotiated(client, MODERN);
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await close();
    }
    assert.ok(!existsSync(note(ws.notes, 'q3-plan')), 'the granted delete left the note');
    assert.deepEqual(decisions(await fixtures.audit(ws.errlog)), [
      ['alice@example.com', 'delete_note', 'allow', 'ok'],
    ]);
  });

  test('accepts a client pinned to 2026-07-28', async () => {
    const ws = await fixtures.stdio([]);
    const { client, close } = await connectStdio(ws, PINNED.mode);
    try {
      assertNegotiated(client, MODERN);
      assert.deepEqual(await toolNames(client), WITHOUT_DELETE);
    } finally {
      await close();
    }
  });

  test('accepts preview_note after the elicitation handler answers {lines: 1}', async () => {
    const ws = await fixtures.stdio([]);
    const { client, wire, close } = await connectStdio(ws, MODERN.mode, 1);
    try {
      const result = await client.callTool({ name: 'preview_note', arguments: { name: 'welcome' } });
      assertAnsweredPreview(client, wire, ws.notes, result);
    } finally {
      await close();
    }
    assertAuditedPreview(await fixtures.audit(ws.errlog), 'alice@example.com');
  });

  test('rejects a manual preview_note retry with a tampered requestState with -32602', async () => {
    const ws = await fixtures.stdio([]);
    const { client, close } = await connectStdio(ws, MODERN.mode, 1);
    try {
      const accepted = await assertTamperedRetryRefused(client);
      assert.equal(textOf(accepted), firstLines(ws.notes, 'welcome', 1));
      assert.deepEqual(client.questions, [], 'the manual rounds never reach the handler');
    } finally {
      await close();
    }
    const outcomes = (await fixtures.audit(ws.errlog)).map((e) => [e.tool, e.outcome]);
    assert.deepEqual(outcomes, [
      ['preview_note', 'input_required'],
      ['preview_note', 'state_rejected'],
      ['preview_note', 'ok'],
    ]);
  });
});

describe('@modelcontextprotocol/client 2.x: notes-server over stdio, 2025-11-25 (legacy)', () => {
  test('hides and refuses delete_note without a grant', async () => {
    const ws = await fixtures.stdio([]);
    const { client, close } = await connectStdio(ws, LEGACY.mode);
    try {
      assertNegotiated(client, LEGACY);
      assert.deepEqual(await toolNames(client), WITHOUT_DELETE);
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } }), assertForbidden);
    } finally {
      await close();
    }
    assert.ok(existsSync(note(ws.notes, 'q3-plan')), 'a refused delete removed the note');
    assert.deepEqual(decisions(await fixtures.audit(ws.errlog)), [
      ['alice@example.com', 'delete_note', 'deny', 'denied'],
    ]);
  });

  test('accepts delete_note with the notes:delete grant', async () => {
    const ws = await fixtures.stdio(['notes:delete']);
    const { client, close } = await connectStdio(ws, LEGACY.mode);
    try {
      assertNegotiated(client, LEGACY);
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await close();
    }
    assert.ok(!existsSync(note(ws.notes, 'q3-plan')), 'the granted delete left the note');
  });

  test('accepts preview_note without asking a 2025-11-25 client', async () => {
    const ws = await fixtures.stdio([]);
    const { client, wire, close } = await connectStdio(ws, LEGACY.mode, 1);
    try {
      const result = await client.callTool({ name: 'preview_note', arguments: { name: 'welcome' } });
      assert.equal(textOf(result), firstLines(ws.notes, 'welcome', DEFAULT_PREVIEW_LINES));
      assert.deepEqual(client.questions, [], 'a 2025-11-25 client gets no InputRequiredResult');
      assert.equal(previewRounds(wire).length, 1);
    } finally {
      await close();
    }
  });
});

describe('@modelcontextprotocol/client 2.x: notes-server over HTTP with OAuth, 2026-07-28 (auto)', () => {
  test('hides delete_note from a token without notes:delete', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'profile' }));
    const { client, transport } = await connectHttp(server.url, MODERN.mode, { authProvider: provider });
    try {
      assertNegotiated(client, MODERN);
      assert.equal(transport.sessionId, undefined, '2026-07-28 over HTTP is stateless');
      assert.deepEqual(await toolNames(client), WITHOUT_DELETE);
      const read = await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } });
      assert.equal(textOf(read), readFileSync(note(server.notes, 'welcome'), 'utf8'));
    } finally {
      await client.close();
    }
    assert.deepEqual(provider.authorizations, [], 'a token that suffices needs no authorization');
  });

  test('refuses delete_note with 403 insufficient_scope naming notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read' });
    const provider = new RecordingOAuthProvider(server.issuer, token);
    // `throw`: the transport hands the 403's challenge to the caller instead of stepping up.
    const { client } = await connectHttp(server.url, MODERN.mode, { authProvider: provider, onInsufficientScope: 'throw' });
    try {
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }), (error) => {
        assert.ok(error instanceof InsufficientScopeError, error);
        assert.equal(error.requiredScope, 'notes:delete');
        return true;
      });
    } finally {
      await client.close();
    }
    assert.deepEqual(provider.authorizations, []);
    assert.ok(existsSync(note(server.notes, 'welcome')), 'a refused call ran');
    assert.deepEqual(decisions(await fixtures.audit(server.errlog)), [
      ['bob@example.com', 'delete_note', 'deny', 'denied'],
    ]);
  });

  test('refuses delete_note with 403 and the client steps up to notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read' });
    const provider = new RecordingOAuthProvider(server.issuer, token);
    const { client } = await connectHttp(server.url, MODERN.mode, { authProvider: provider });
    try {
      // The 403's insufficient_scope challenge makes the SDK ask the authorization server for
      // exactly the missing scope, and the call fails until the user has granted it.
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }), UnauthorizedError);
      assertAuthorizationRequest(provider, server, 'notes:delete');
      assert.ok(existsSync(note(server.notes, 'welcome')), 'a refused call ran');

      // The authorization server grants it: the same client, with the new token, may delete.
      const granted = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read notes:delete' });
      provider.saveTokens({ access_token: granted, token_type: 'Bearer' });
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await client.close();
    }
    assert.ok(!existsSync(note(server.notes, 'welcome')), 'the stepped-up delete left the note');
    assert.deepEqual(decisions(await fixtures.audit(server.errlog)), [
      ['bob@example.com', 'delete_note', 'deny', 'denied'],
      ['bob@example.com', 'delete_note', 'allow', 'ok'],
    ]);
  });

  test('accepts delete_note for a token with notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'carol@example.com', scope: 'notes:delete' });
    const provider = new RecordingOAuthProvider(server.issuer, token);
    const { client } = await connectHttp(server.url, MODERN.mode, { authProvider: provider });
    try {
      assertNegotiated(client, MODERN);
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await client.close();
    }
    assert.ok(!existsSync(note(server.notes, 'q3-plan')));
    assert.deepEqual(decisions(await fixtures.audit(server.errlog)), [
      ['carol@example.com', 'delete_note', 'allow', 'ok'],
    ]);
  });

  test('accepts a client pinned to 2026-07-28', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'notes:delete' }));
    const { client, transport } = await connectHttp(server.url, PINNED.mode, { authProvider: provider });
    try {
      assertNegotiated(client, MODERN);
      assert.equal(transport.sessionId, undefined, '2026-07-28 over HTTP is stateless');
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
    } finally {
      await client.close();
    }
  });

  test('accepts preview_note after the elicitation handler answers {lines: 1}', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'notes:read' }));
    const { client, wire } = await connectHttp(server.url, MODERN.mode, { authProvider: provider, lines: 1 });
    try {
      const result = await client.callTool({ name: 'preview_note', arguments: { name: 'welcome' } });
      assertAnsweredPreview(client, wire, server.notes, result);
    } finally {
      await client.close();
    }
    assertAuditedPreview(await fixtures.audit(server.errlog), 'alice@example.com');
  });

  test('rejects a manual preview_note retry with a tampered requestState with -32602', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'notes:read' }));
    const { client } = await connectHttp(server.url, MODERN.mode, { authProvider: provider, lines: 1 });
    try {
      const accepted = await assertTamperedRetryRefused(client);
      assert.equal(textOf(accepted), firstLines(server.notes, 'welcome', 1));
    } finally {
      await client.close();
    }
    const outcomes = (await fixtures.audit(server.errlog)).map((e) => [e.tool, e.outcome]);
    assert.deepEqual(outcomes, [
      ['preview_note', 'input_required'],
      ['preview_note', 'state_rejected'],
      ['preview_note', 'ok'],
    ]);
  });

  test('rejects a client without a token with 401, and the client finds where to authorize', async () => {
    const server = await fixtures.http();
    await assert.rejects(connectHttp(server.url, MODERN.mode), (error) => {
      assert.ok(error instanceof SdkHttpError, error);
      assert.equal(error.status, 401);
      return true;
    });
    const provider = new RecordingOAuthProvider(server.issuer, undefined);
    // The 401 on the `server/discover` probe: the SDK reads the protected resource metadata,
    // then the authorization server's, and sends the user to authorize the scopes listed.
    await assert.rejects(connectHttp(server.url, MODERN.mode, { authProvider: provider }), UnauthorizedError);
    assertAuthorizationRequest(provider, server, 'notes:delete');
    assert.deepEqual(await fixtures.audit(server.errlog), []);
  });
});

describe('@modelcontextprotocol/client 2.x: notes-server over HTTP with OAuth, 2025-11-25 (legacy)', () => {
  test('hides delete_note from a token without notes:delete', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'profile' }));
    const { client, transport } = await connectHttp(server.url, LEGACY.mode, { authProvider: provider });
    try {
      assertNegotiated(client, LEGACY);
      assert.ok(transport.sessionId, 'a 2025-11-25 connection over HTTP runs in a session');
      assert.deepEqual(await toolNames(client), WITHOUT_DELETE);
    } finally {
      await client.close();
    }
  });

  test('refuses delete_note with 403 and the client steps up to notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read' });
    const provider = new RecordingOAuthProvider(server.issuer, token);
    const { client } = await connectHttp(server.url, LEGACY.mode, { authProvider: provider });
    try {
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }), UnauthorizedError);
      assertAuthorizationRequest(provider, server, 'notes:delete');
      const granted = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read notes:delete' });
      provider.saveTokens({ access_token: granted, token_type: 'Bearer' });
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await client.close();
    }
    assert.ok(!existsSync(note(server.notes, 'welcome')), 'the stepped-up delete left the note');
    assert.deepEqual(decisions(await fixtures.audit(server.errlog)), [
      ['bob@example.com', 'delete_note', 'deny', 'denied'],
      ['bob@example.com', 'delete_note', 'allow', 'ok'],
    ]);
  });

  test('accepts delete_note for a token with notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'carol@example.com', scope: 'notes:delete' });
    const provider = new RecordingOAuthProvider(server.issuer, token);
    const { client } = await connectHttp(server.url, LEGACY.mode, { authProvider: provider });
    try {
      assert.deepEqual(await toolNames(client), ALL_TOOLS);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } });
      assert.equal(deleted.isError, false, textOf(deleted));
    } finally {
      await client.close();
    }
    assert.ok(!existsSync(note(server.notes, 'q3-plan')));
  });

  test('accepts preview_note without asking a 2025-11-25 client', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(server.issuer, await fixtures.token(server.url, { scope: 'notes:read' }));
    const { client } = await connectHttp(server.url, LEGACY.mode, { authProvider: provider, lines: 1 });
    try {
      const result = await client.callTool({ name: 'preview_note', arguments: { name: 'welcome' } });
      assert.equal(textOf(result), firstLines(server.notes, 'welcome', DEFAULT_PREVIEW_LINES));
      assert.deepEqual(client.questions, [], 'a 2025-11-25 client gets no InputRequiredResult');
    } finally {
      await client.close();
    }
  });
});
