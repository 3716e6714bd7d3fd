// Headless Chromium for the end-to-end tests: Debian's chromium driven by playwright-core, in a
// fresh profile each time. Import `withBrowser` and `signIn` from here, or run it:
//
//   node browser.mjs check-login AUTHORIZATION_URL
//       load the provider's login page; prints {"title", "url", "login_form", "client"}
//   node browser.mjs sign-in AUTHORIZATION_URL EMAIL PASSWORD REDIRECT_PREFIX
//       sign in and allow on the consent page, until the provider sends the browser back to
//       REDIRECT_PREFIX (something must serve it); prints {"redirect": URL}, or {"error": MESSAGE}
//       when the login form refused the password
//
// MCP_LP_OIDC_CHROMIUM names the browser (default /usr/bin/chromium).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.MCP_LP_OIDC_CHROMIUM ?? '/usr/bin/chromium';

// No sandbox (CI runs as root), no GPU, and no traffic of the browser's own: only the test's
// requests leave it.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Run `fn(page, context)` in a new headless browser with a fresh --user-data-dir (playwright
// passes it from the directory given), removed afterwards.
export async function withBrowser(fn, { timeout = 20000 } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-lp-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    context.setDefaultTimeout(timeout);
    const page = context.pages()[0] ?? await context.newPage();
    return await fn(page, context);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// On the provider's login page: sign in, then allow on the consent page if it is shown. Returns
// the error the login form shows, or undefined once past it.
export async function signIn(page, email, password) {
  await page.locator('form#login input[name="login"]').fill(email);
  await page.locator('form#login input[name="password"]').fill(password);
  await Promise.all([page.waitForNavigation(), page.locator('form#login button[type="submit"]').click()]);
  const error = page.locator('#error');
  if (await error.count()) return (await error.textContent()) ?? 'login refused';
  if (await page.locator('form#consent').count()) {
    await Promise.all([page.waitForNavigation(), page.locator('form#consent button[type="submit"]').click()]);
  }
  return undefined;
}

async function main([command, ...args]) {
  if (command === 'check-login' && args.length === 1) {
    return withBrowser(async (page) => {
      await page.goto(args[0]);
      await page.locator('form#login').waitFor();
      return {
        title: await page.title(),
        url: page.url(),
        login_form: await page.locator('form#login input[name="password"]').count() === 1,
        client: await page.locator('#client').textContent(),
        user_agent: await page.evaluate(() => navigator.userAgent),
      };
    });
  }
  if (command === 'sign-in' && args.length === 4) {
    const [url, email, password, prefix] = args;
    return withBrowser(async (page) => {
      await page.goto(url);
      const error = await signIn(page, email, password);
      if (error) return { error };
      await page.waitForURL((u) => u.href.startsWith(prefix));
      return { redirect: page.url() };
    });
  }
  throw new Error('usage: browser.mjs check-login URL | sign-in URL EMAIL PASSWORD REDIRECT_PREFIX');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
  } catch (err) {
    process.stderr.write(`browser.mjs: ${err.stack ?? err}\n`);
    process.exit(1);
  }
}
