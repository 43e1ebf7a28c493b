/**
 * The console's mail settings and password reset, against a local SMTP server: an address saved on
 * the account page is confirmed by opening the mailed link in the browser; the notification choice
 * is stored; a forgotten password is reset through the mailed link and the new one signs in.
 */
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');
const eventually = <T>(fn: () => T | Promise<T>, timeout = 10_000) => expect.poll(fn, { timeout });

describe.runIf(ready)('the console: mail settings and password reset', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let smtp: SMTPServer;
  const mails: ParsedMail[] = [];

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, _session, callback) {
        simpleParser(stream).then(
          (mail) => {
            mails.push(mail);
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const port = (smtp.server.address() as AddressInfo).port;
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([
      startStack({ smtpUrl: `smtp://127.0.0.1:${port}` }),
      launchChromium(),
    ]);
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
  });

  const linkIn = (mail: ParsedMail, path: string) =>
    new RegExp(`(http://\\S+${path}\\?token=\\S+)`).exec(mail.text ?? '')?.[1];

  it('confirms an address through the mailed link, and stores the notification choice', async () => {
    // The admin signs up a user with a password, whose password is reset later.
    await stack.gql(
      'mutation { signUp(input: { username: "carol", password: "first password 1" }) { __typename } }',
    );
    await page.goto(`${stack.url}/sign-in`);
    await page.getByLabel('Username', { exact: true }).fill('carol');
    await page.getByLabel('Password', { exact: true }).fill('first password 1');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/builds$/);
    await page.goto(`${stack.url}/account`);
    const settings = page.getByTestId('mail-settings');
    await eventually(() => settings.getByTestId('email-state').textContent()).toContain('No address yet');
    await settings.getByLabel('Email address').fill('carol@example.com');
    await settings.getByRole('button', { name: 'Save and confirm' }).click();
    await eventually(() => settings.getByRole('status').first().textContent()).toContain(
      'A confirmation link is on its way to carol@example.com',
    );
    await eventually(() => settings.getByTestId('email-state').textContent()).toContain(
      'is not confirmed yet',
    );
    await eventually(() => mails.length).toBe(1);
    const link = linkIn(mails[0]!, '/verify-email');
    expect(link).toBeDefined();
    await page.goto(link!);
    await page.waitForURL(/\/account\?email=verified$/);
    await eventually(() => settings.getByTestId('email-state').textContent()).toBe(
      'carol@example.com is confirmed.',
    );
    expect(await settings.getByText('Your address is confirmed.').count()).toBe(1);

    await settings.getByLabel('Those, and a build that passes after a failure').check();
    await eventually(() => settings.getByText('Saved.').count()).toBe(1);
    await page.screenshot({ path: screenshotPath('account-mail'), fullPage: true });
  });

  it('resets a forgotten password through the mailed link', async () => {
    await context.clearCookies();
    await page.evaluate(() => localStorage.clear());
    await page.goto(`${stack.url}/sign-in`);
    const forgot = page.getByTestId('forgot-password');
    await forgot.locator('summary').click();
    await forgot.getByLabel('Username or email').fill('carol@example.com');
    await forgot.getByRole('button', { name: 'Mail me a link' }).click();
    await eventually(() => forgot.getByRole('status').textContent()).toContain('a link is on its way');
    await eventually(() => mails.length).toBe(2);
    expect(mails[1]!.subject).toBe('Reset your Kiln password');
    const link = linkIn(mails[1]!, '/reset-password');
    expect(link).toBeDefined();
    await page.goto(link!);
    await page.getByLabel('New password', { exact: true }).fill('second password 2');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.waitForURL(/\/sign-in\?reset=done$/);
    await eventually(() => page.getByText('Your new password is set').count()).toBe(1);
    await page.getByLabel('Username', { exact: true }).fill('carol');
    await page.getByLabel('Password', { exact: true }).fill('second password 2');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/builds$/);
    // The link worked once.
    await page.goto(link!);
    await page.getByLabel('New password', { exact: true }).fill('third password 3');
    await page.getByRole('button', { name: 'Set password' }).click();
    await eventually(() => page.getByRole('alert').first().textContent()).toContain(
      'unknown, used or expired',
    );
  });
});
