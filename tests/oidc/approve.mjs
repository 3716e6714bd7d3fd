// Open an mcp-lp approval page in headless Chromium, sign in at the provider, read the pending
// call, and optionally press Approve or Deny. Prints what the page showed as JSON, with the
// page's HTML and the cookies the browser would send to the page (name, value, expires):
//   node approve.mjs PAGE_URL EMAIL PASSWORD [approve|deny]
import { signIn, withBrowser } from './browser.mjs';

const [url, email, password, action] = process.argv.slice(2);

const origin = new URL(url).origin;

const seen = await withBrowser(async (page, context) => {
  await page.goto(url);
  // The page sends a browser without a session to the provider's login form.
  await page.locator('form#login').waitFor();
  const error = await signIn(page, email, password);
  if (error) return { error };
  // Back at the server: on the page, or on the sign-in's callback when the server refused it.
  await page.waitForURL((u) => u.origin === origin);
  const read = async (selector) => {
    const found = page.locator(selector);
    return (await found.count()) ? (await found.textContent()) : null;
  };
  const shown = {
    url: page.url(),
    tool: await read('#tool'),
    requester: await read('#requester'),
    arguments: await read('#arguments'),
    why: await read('#why'),
    status: await read('#status'),
    approver: await read('#approver'),
    refusal: await read('#refusal'),
    can_decide: (await page.locator('#approve').count()) === 1,
    page_error: await read('#error'),
    html: await page.content(),
    cookies: (await context.cookies(url)).map(({ name, value, expires }) => ({ name, value, expires })),
  };
  if (action && shown.can_decide) {
    await Promise.all([page.waitForNavigation(), page.locator(`#${action}`).click()]);
    shown.notice = await read('#notice');
    shown.after = await read('#status');
    shown.error = await read('#error');
  }
  return shown;
});
process.stdout.write(`${JSON.stringify(seen)}\n`);
