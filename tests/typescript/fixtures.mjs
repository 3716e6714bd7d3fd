// The fixtures of the TypeScript client tests, from the Python end-to-end harness: this module
// runs tests/python/ts_fixture.py (in .venv) and asks it, one JSON line at a time, for
// workspaces, the HTTP server, access tokens and audit events. See that file for the requests.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** $NOTES_SERVER_BIN, else <target>/debug/notes-server. */
export function notesServerBinary() {
  if (process.env.NOTES_SERVER_BIN) return process.env.NOTES_SERVER_BIN;
  const target = process.env.CARGO_TARGET_DIR
    ? resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
    : join(REPO_ROOT, 'target');
  return join(target, 'debug', 'notes-server');
}

export class Fixtures {
  static start() {
    const python = process.env.MCP_LP_PYTHON ?? join(REPO_ROOT, '.venv', 'bin', 'python');
    if (!existsSync(python)) throw new Error(`${python} does not exist: run scripts/ts-tests.sh, which creates .venv`);
    const script = join(REPO_ROOT, 'tests', 'python', 'ts_fixture.py');
    const child = spawn(python, [script, '--binary', notesServerBinary()], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    return new Fixtures(child);
  }

  constructor(child) {
    this.child = child;
    this.pending = [];
    this.exited = new Promise((done) => child.once('exit', done));
    child.once('exit', (code) => {
      for (const { reject } of this.pending.splice(0)) reject(new Error(`ts_fixture.py exited with ${code}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const { resolve: answer, reject } = this.pending.shift();
      const reply = JSON.parse(line);
      if (reply.error) reject(new Error(`ts_fixture.py: ${reply.error}\n${reply.trace ?? ''}`));
      else answer(reply);
    });
  }

  request(op, args = {}) {
    return new Promise((answer, reject) => {
      this.pending.push({ resolve: answer, reject });
      this.child.stdin.write(`${JSON.stringify({ op, ...args })}\n`);
    });
  }

  /** A workspace with a [stdio] configuration holding `grants` (names), each expiring in a week. */
  stdio(grants = []) {
    return this.request('stdio', { grants });
  }

  /** A fresh workspace served over streamable HTTP behind bearer-token validation. */
  http() {
    return this.request('http');
  }

  async token(aud, { sub = 'alice@example.com', scope = '' } = {}) {
    return (await this.request('token', { aud, sub, scope })).token;
  }

  async audit(errlog) {
    return (await this.request('audit', { errlog })).events;
  }

  /** Stop every server the fixtures started and remove their workspaces. */
  async stop() {
    this.child.stdin.end();
    await this.exited;
  }
}
