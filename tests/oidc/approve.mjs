// Open an mcp-lp approval page in headless Chromium, sign in at the provider, read the pending
// call, and optionally press Approve or Deny. Prints what the page showed as JSON:
//   node approve.mjs PAGE_URL EMAIL PASSWORD [approve|deny]
import { signIn, withBrowser } from './browser.mjs';

const [url, email, password, action] = process.argv.slice(2);

const seen = await withBrowser(async (page) => {
  await page.goto(url);
  // The page sends a browser without a session to the provider's login form.
  await page.locator('form#login').waitFor();
  const error = await signIn(page, email, password);
  if (error) return { error };
  await page.waitForURL((u) => u.href.startsWith(url));
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
