// notes-server driven by the official MCP TypeScript SDK's 1.x client (@modelcontextprotocol/sdk;
// notes-server-v2.test.mjs has the 2.x client), on 2025-11-25,
// over stdio with grants from the configuration, and over streamable HTTP as an OAuth resource
// server: grants from the token's scopes, 401 without a token, 403 step-up for a missing scope.
// Run by scripts/ts-tests.sh with node's test runner.

import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

import { Fixtures, notesServerBinary } from './fixtures.mjs';

// The SDK's 1.x line speaks the initialize handshake; mcp-lp answers it with this revision.
const PROTOCOL_VERSION = '2025-11-25';
const FORBIDDEN = -32003;
const CLIENT_INFO = { name: 'mcp-lp-typescript-tests', version: '0' };

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
const toolNames = async (client) => (await client.listTools()).tools.map((tool) => tool.name).sort();
const decisions = (events) => events.map((e) => [e.principal, e.tool, e.decision, e.outcome]);

/** The official client connected to notes-server over stdio; its stderr goes to `errlog`. */
async function connectStdio({ config, errlog }) {
  const stderr = openSync(errlog, 'w');
  const transport = new StdioClientTransport({ command: notesServerBinary(), args: ['--config', config], stderr });
  // The stdio transport keeps no protocol version; record the one the handshake settles on.
  transport.setProtocolVersion = (version) => {
    transport.protocolVersion = version;
  };
  const client = new Client(CLIENT_INFO);
  await client.connect(transport);
  return {
    client,
    transport,
    close: async () => {
      await client.close();
      closeSync(stderr);
    },
  };
}

/** An OAuth client as the SDK sees one: a registered client id and the current access token.
 * It records the authorization requests the SDK sends the user to instead of following them. */
class RecordingOAuthProvider {
  constructor(accessToken) {
    this.accessToken = accessToken;
    this.authorizations = [];
  }
  get redirectUrl() {
    return 'http://127.0.0.1/oauth/callback';
  }
  get clientMetadata() {
    return { client_name: CLIENT_INFO.name, redirect_uris: [this.redirectUrl], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return { client_id: 'mcp-lp-typescript-tests' };
  }
  tokens() {
    return this.accessToken ? { access_token: this.accessToken, token_type: 'Bearer' } : undefined;
  }
  saveTokens(tokens) {
    this.accessToken = tokens.access_token;
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

async function connectHttp(url, authProvider) {
  const transport = new StreamableHTTPClientTransport(new URL(url), authProvider ? { authProvider } : {});
  const client = new Client(CLIENT_INFO);
  await client.connect(transport);
  return { client, transport };
}

/** The one authorization request the SDK made, checked against the server's challenge. */
function assertAuthorizationRequest(provider, server, scope) {
  assert.equal(provider.authorizations.length, 1, `authorization requests: ${provider.authorizations.join(', ')}`);
  const [request] = provider.authorizations;
  assert.equal(`${request.origin}${request.pathname}`, `${server.issuer}/authorize`);
  assert.equal(request.searchParams.get('response_type'), 'code');
  assert.equal(request.searchParams.get('client_id'), 'mcp-lp-typescript-tests');
  assert.equal(request.searchParams.get('code_challenge_method'), 'S256');
  // RFC 8707: the token is asked for this server, as its protected resource metadata names it.
  assert.equal(request.searchParams.get('resource'), server.url);
  assert.equal(request.searchParams.get('scope'), scope);
}

describe('notes-server over stdio', () => {
  test('hides and refuses delete_note without a grant', async () => {
    const ws = await fixtures.stdio([]);
    const { client, transport, close } = await connectStdio(ws);
    try {
      assert.equal(transport.protocolVersion, PROTOCOL_VERSION);
      assert.equal(client.getServerVersion().name, 'notes-server');
      assert.deepEqual(await toolNames(client), ['list_notes', 'preview_note', 'read_note']);

      const read = await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } });
      assert.equal(read.isError, false);
      assert.equal(textOf(read), readFileSync(note(ws.notes, 'welcome'), 'utf8'));

      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } }), (error) => {
        assert.ok(error instanceof McpError, error);
        assert.equal(error.code, FORBIDDEN);
        assert.match(error.message, /tool `delete_note` requires grant `notes:delete`/);
        return true;
      });
    } finally {
      await close();
    }
    assert.ok(existsSync(note(ws.notes, 'q3-plan')), 'a refused delete removed the note');
    assert.deepEqual(decisions(await fixtures.audit(ws.errlog)), [
      ['alice@example.com', 'read_note', 'allow', 'ok'],
      ['alice@example.com', 'delete_note', 'deny', 'denied'],
    ]);
  });

  test('accepts delete_note with the notes:delete grant', async () => {
    const ws = await fixtures.stdio(['notes:delete']);
    const { client, close } = await connectStdio(ws);
    try {
      assert.deepEqual(await toolNames(client), ['delete_note', 'list_notes', 'preview_note', 'read_note']);
      const deleted = await client.callTool({ name: 'delete_note', arguments: { name: 'q3-plan' } });
      assert.equal(deleted.isError, false, textOf(deleted));
      const listed = await client.callTool({ name: 'list_notes', arguments: {} });
      assert.deepEqual(listed.structuredContent, { names: ['welcome'] });
    } finally {
      await close();
    }
    assert.ok(!existsSync(note(ws.notes, 'q3-plan')), 'the granted delete left the note');
    assert.deepEqual(decisions(await fixtures.audit(ws.errlog)), [
      ['alice@example.com', 'delete_note', 'allow', 'ok'],
      ['alice@example.com', 'list_notes', 'allow', 'ok'],
    ]);
  });
});

describe('notes-server over HTTP with OAuth', () => {
  test('hides delete_note from a token without notes:delete', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(await fixtures.token(server.url, { scope: 'profile' }));
    const { client, transport } = await connectHttp(server.url, provider);
    try {
      assert.equal(transport.protocolVersion, PROTOCOL_VERSION);
      assert.deepEqual(await toolNames(client), ['list_notes', 'preview_note', 'read_note']);
      const read = await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } });
      assert.equal(textOf(read), readFileSync(note(server.notes, 'welcome'), 'utf8'));
    } finally {
      await client.close();
    }
    assert.deepEqual(provider.authorizations, [], 'a token that suffices needs no authorization');
  });

  test('refuses delete_note with 403 and the client steps up to notes:delete', async () => {
    const server = await fixtures.http();
    const token = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read' });
    const provider = new RecordingOAuthProvider(token);
    const { client } = await connectHttp(server.url, provider);
    try {
      // The 403's insufficient_scope challenge makes the SDK ask the authorization server for
      // exactly the missing scope, and the call fails until the user has granted it.
      await assert.rejects(client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }), UnauthorizedError);
      assertAuthorizationRequest(provider, server, 'notes:delete');
      assert.ok(existsSync(note(server.notes, 'welcome')), 'a refused call ran');

      // The authorization server grants it: the same client, with the new token, may delete.
      const granted = await fixtures.token(server.url, { sub: 'bob@example.com', scope: 'notes:read notes:delete' });
      provider.saveTokens({ access_token: granted });
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
    const provider = new RecordingOAuthProvider(token);
    const { client } = await connectHttp(server.url, provider);
    try {
      assert.deepEqual(await toolNames(client), ['delete_note', 'list_notes', 'preview_note', 'read_note']);
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

  test('rejects a request without a token with 401', async () => {
    const server = await fixtures.http();
    await assert.rejects(connectHttp(server.url), (error) => {
      assert.ok(error instanceof StreamableHTTPError, error);
      assert.equal(error.code, 401);
      return true;
    });
  });

  test('rejects a client without a token with 401, and the client finds where to authorize', async () => {
    const server = await fixtures.http();
    const provider = new RecordingOAuthProvider(undefined);
    // From the 401's challenge the SDK reads the protected resource metadata, then the
    // authorization server's, and sends the user to authorize the scopes the server lists.
    await assert.rejects(connectHttp(server.url, provider), UnauthorizedError);
    assertAuthorizationRequest(provider, server, 'notes:delete');
    assert.deepEqual(await fixtures.audit(server.errlog), []);
  });
});
