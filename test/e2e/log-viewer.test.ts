/**
 * The log viewer on a 1,000,000-line log, in Debian's Chromium: the harness page (web/harness) feeds
 * the real LogViewer synthetic chunks, as the buildLog subscription would.
 */
import { rm } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../testkit/services.ts';
import { buildHarness, launchChromium, screenshotPath, serveFolder } from './console-kit.ts';

/** Line elements in the DOM may not grow with the log: a screenful plus overscan on both sides. */
const MAX_LINE_ELEMENTS = 150;

describe.runIf(available('chromium'))('the log viewer on a million lines', () => {
  let out: string;
  let site: Awaited<ReturnType<typeof serveFolder>>;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    out = await buildHarness();
    site = await serveFolder(out);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    await page.goto(`${site.url}/harness/log-viewer.html`);
    await page.waitForSelector('[data-testid="log-viewport"]');
    const count = await page.evaluate(() =>
      (window as unknown as { harness: { feed(n: number): number } }).harness.feed(1_000_000),
    );
    expect(count).toBe(1_000_002);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (out) await rm(out, { recursive: true, force: true });
  });

  const lineElements = () => page.locator('.log-line').count();
  /** Line numbers of the rows inside the viewport's visible box. */
  const visibleNumbers = () =>
    page.evaluate(() => {
      const viewport = document.querySelector('[data-testid="log-viewport"]')!.getBoundingClientRect();
      return [...document.querySelectorAll('.log-line')]
        .filter((el) => {
          const r = el.getBoundingClientRect();
          return r.top >= viewport.top - 1 && r.bottom <= viewport.bottom + 1;
        })
        .map((el) => Number(el.querySelector('.log-num')!.textContent));
    });

  it('counts every line but keeps only a screenful of them in the DOM', async () => {
    await expect.poll(() => page.getByTestId('line-count').textContent()).toBe('1,000,002 lines');
    expect(await lineElements()).toBeGreaterThan(10);
    expect(await lineElements()).toBeLessThanOrEqual(MAX_LINE_ELEMENTS);
  });

  it('follows to the last line and stays bounded while scrolling through the whole log', async () => {
    // Following (the default) puts the last line at the bottom.
    await expect.poll(async () => (await visibleNumbers()).at(-1)).toBe(1_000_000);
    const viewport = page.getByTestId('log-viewport');
    await viewport.evaluate((el) => {
      el.scrollTop = 0;
    });
    await expect.poll(async () => (await visibleNumbers())[0]).toBe(1);
    await expect
      .poll(() => page.getByRole('button', { name: 'Follow' }).getAttribute('aria-pressed'))
      .toBe('false');
    for (const fraction of [0.25, 0.5, 0.75, 0.999]) {
      await viewport.evaluate((el, f) => {
        el.scrollTop = (el.scrollHeight - el.clientHeight) * f;
      }, fraction);
      await page.waitForTimeout(50);
      const numbers = await visibleNumbers();
      expect(numbers.length).toBeGreaterThan(10);
      // The rows in view are consecutive lines near that fraction of the log.
      expect(numbers.at(-1)! - numbers[0]!).toBe(numbers.length - 1);
      expect(Math.abs(numbers[0]! / 1_000_000 - fraction)).toBeLessThan(0.01);
      expect(await lineElements()).toBeLessThanOrEqual(MAX_LINE_ELEMENTS);
    }
    // The End key (keyboard users) reaches the very end.
    await viewport.focus();
    await page.keyboard.press('End');
    await expect.poll(async () => (await visibleNumbers()).at(-1)).toBe(1_000_000);
    expect(await lineElements()).toBeLessThanOrEqual(MAX_LINE_ELEMENTS);
    await page.screenshot({ path: screenshotPath('log-million-lines') });
  });

  it('finds a line among a million and scrolls to it', async () => {
    await page.getByLabel('Search the log').fill('line 765432');
    await expect.poll(() => page.getByTestId('search-count').textContent()).toBe('0/1');
    await page.getByLabel('Search the log').press('Enter');
    await expect.poll(() => page.getByTestId('search-count').textContent()).toBe('1/1');
    const current = page.locator('.log-line.log-current');
    await expect.poll(() => current.locator('.log-num').textContent()).toBe('765432');
    await expect.poll(() => current.locator('mark').textContent()).toBe('line 765432');
    expect(await visibleNumbers()).toContain(765432);
  });

  it('opens a #<job>-L<n> anchor on its line, highlighted and in view', async () => {
    await page.evaluate(() => {
      window.location.hash = 'seq-L500000';
    });
    const target = page.locator('.log-line.log-target');
    await expect.poll(() => target.locator('.log-num').textContent()).toBe('500000');
    expect(await visibleNumbers()).toContain(500000);
  });

  it('shows ANSI colours as styles, never as escape codes', async () => {
    await page.evaluate(() => {
      window.location.hash = 'seq-L10';
    });
    const line = page.locator('.log-line.log-target');
    await expect.poll(() => line.locator('.log-num').textContent()).toBe('10');
    await expect.poll(() => line.locator('.a-f3').textContent()).toBe('line 10');
    expect(await line.locator('.log-text').textContent()).toBe('line 10');
    await expect.poll(() => page.locator('[data-section="setup"]').textContent()).toContain('2 lines');
    await expect.poll(() => page.locator('.log-line .a-bold.a-f2').first().textContent()).toBe('ready');
  });
});
