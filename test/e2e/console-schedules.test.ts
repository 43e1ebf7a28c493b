/**
 * The console's schedules end to end (Debian's Chromium through playwright-core, a real `kiln serve`
 * on PostgreSQL and RabbitMQ with KILN_SCHEDULE_MIN_SECONDS=1, a real runner): the form's live
 * preview against the API's own `scheduleTimes` (in the chosen zone and the browser's, which is set to
 * New York here), refusals next to their fields, a schedule firing every second with its last build
 * in the list and "scheduled by" on the build's page, pause (no next run, no more builds), resume,
 * delete after a confirmation, a schedule of a repository's branch and its edit, and the viewer's own
 * schedules.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeRemote, type Remote } from '../testkit/forge.ts';
import { available } from '../testkit/services.ts';
import { ensureConsoleBuilt, launchChromium, type Stack, screenshotPath, startStack } from './console-kit.ts';

const ready = available('postgres') && available('rabbitmq') && available('chromium');

/** Polls for what the server has to do first (a lazy page, a debounced preview, a mutation). */
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 10_000 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The browser's zone: the preview's "your time" must be this one, not the chosen zone. */
const BROWSER_ZONE = 'America/New_York';

const MANIFEST = `driver: {type: os}
stages: [s]
jobs:
  - {stage: s, name: tick, commands: [echo tick]}
`;

/** `04:30` as a 24-hour clock in `zone` reads the time. */
function clockIn(iso: string, zone: string): string {
  return new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(new Date(iso));
}

type Times = { __typename: string; times?: string[]; message?: string; path?: string };

interface ScheduleView {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  manifest: string | null;
  branch: string | null;
  onlyOnChanges: boolean;
  nextRuns: string[];
  repository: { id: string } | null;
  builds: {
    edges: { node: { id: string; status: string; cause: { scheduledFor: string | null; late: boolean } } }[];
  };
}

const SCHEDULE_FIELDS = `id name cron timezone enabled manifest branch onlyOnChanges nextRuns(first: 1)
  repository { id }
  builds(first: 100) { edges { node { id status cause { scheduledFor late } } } }`;

describe.runIf(ready)('the console pages for schedules', () => {
  let stack: Stack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let dir: string;
  let remote: Remote;
  let repositoryId = '';
  const pageErrors: string[] = [];

  const scheduleTimes = async (cron: string, timezone: string) =>
    (
      await stack.gql<{ scheduleTimes: Times }>(
        `query ($cron: String!, $timezone: String) { scheduleTimes(cron: $cron, timezone: $timezone) {
          __typename ... on ScheduleTimesSuccess { times } ... on InputError { message path } } }`,
        { cron, timezone },
      )
    ).scheduleTimes;

  const namespaceSchedules = async () =>
    (
      await stack.gql<{ namespace: { schedules: ScheduleView[] } }>(
        `query { namespace(path: "team") { schedules { ${SCHEDULE_FIELDS} } } }`,
      )
    ).namespace.schedules;

  const scheduleNamed = async (name: string) => (await namespaceSchedules()).find((s) => s.name === name);

  const scheduleById = async (id: string) =>
    (
      await stack.gql<{ node: ScheduleView | null }>(
        `query ($id: ID!) { node(id: $id) { ... on Schedule { ${SCHEDULE_FIELDS} } } }`,
        { id },
      )
    ).node;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-console-schedules-'));
    remote = await makeRemote(dir);
    await remote.commit({ '.kiln.yml': MANIFEST }, 'first');
    await ensureConsoleBuilt();
    [stack, browser] = await Promise.all([startStack({ scheduleMinSeconds: 1 }), launchChromium()]);
    await stack.gql('mutation { createNamespace(input: { path: "team" }) { __typename } }');
    const repo = await stack.gql<{ createRepository: { repository: { id: string } } }>(
      `mutation ($url: String!) { createRepository(input: { namespace: "team", cloneUrl: $url, forge: GENERIC }) {
        ... on CreateRepositorySuccess { repository { id } } } }`,
      { url: remote.url },
    );
    repositoryId = repo.createRepository.repository.id;
    context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      timezoneId: BROWSER_ZONE,
      locale: 'en-US',
    });
    context.setDefaultTimeout(10_000);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${err.message}\n${err.stack}`));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
    await page.screenshot({ path: screenshotPath(`failed-${name}`), fullPage: true }).catch(() => {});
  });

  const form = () => page.getByRole('form', { name: 'New schedule' });
  const field = (name: string) => form().locator(`[data-field="${name}"]`);
  const fieldError = (name: string) => field(name).locator('.field-error');
  const preview = () => form().getByTestId('schedule-preview');
  const previewTimes = () =>
    preview()
      .locator('li')
      .evaluateAll((items) => items.map((li) => li.getAttribute('data-time')));
  const row = (name: string) => page.locator(`#schedules [data-schedule="${name}"]`);

  it("previews the next five times in the chosen zone and the browser's, as the API computes them", async () => {
    await page.goto(`${stack.url}/sign-in`);
    await page.getByLabel('API token', { exact: true }).fill(stack.token);
    await page.getByRole('button', { name: 'Sign in with token' }).click();
    await page.waitForURL(/\/builds$/);
    await page.goto(`${stack.url}/namespaces/admin/team`);
    await page.getByRole('main').getByRole('link', { name: 'Schedules', exact: true }).click();
    await page.waitForURL(/\/namespaces\/admin\/team#schedules$/);
    await eventually(() => page.locator('#schedules .empty-title').textContent()).toBe('No schedules yet');
    await page.getByRole('button', { name: 'New schedule' }).click();

    await form().getByLabel('Cron expression', { exact: true }).fill('30 4 * * *');
    expect(await form().getByLabel('Time zone', { exact: true }).inputValue()).toBe('UTC');
    const utc = (await scheduleTimes('30 4 * * *', 'UTC')).times!;
    expect(utc).toHaveLength(5);
    await eventually(previewTimes).toEqual(utc);
    const zoned = await preview().locator('.preview-zone').allTextContents();
    for (const text of zoned) expect(text).toContain('04:30:00');
    const local = await preview().locator('.preview-local').allTextContents();
    expect(local).toHaveLength(5);
    local.forEach((text, i) => {
      expect(text).toContain(BROWSER_ZONE);
      expect(text).toContain(clockIn(utc[i]!, BROWSER_ZONE));
    });

    await form().getByLabel('Time zone', { exact: true }).fill('Asia/Tokyo');
    const tokyo = (await scheduleTimes('30 4 * * *', 'Asia/Tokyo')).times!;
    expect(tokyo).not.toEqual(utc);
    await eventually(previewTimes).toEqual(tokyo);
    for (const text of await preview().locator('.preview-zone').allTextContents()) {
      expect(text).toContain('04:30:00');
    }
    const tokyoLocal = await preview().locator('.preview-local').allTextContents();
    tokyoLocal.forEach((text, i) => {
      expect(text).toContain(clockIn(tokyo[i]!, BROWSER_ZONE));
    });
    // The zone's list offers IANA names as one types.
    expect(await form().locator('datalist option[value="Asia/Tokyo"]').count()).toBe(1);
    await page.screenshot({ path: screenshotPath('schedule-preview'), fullPage: true });
  });

  it('shows a refused expression or zone next to its field, and a refused manifest next to the manifest', async () => {
    await form().getByLabel('Cron expression', { exact: true }).fill('61 * * * *');
    const refused = await scheduleTimes('61 * * * *', 'Asia/Tokyo');
    expect(refused).toMatchObject({ __typename: 'InputError', path: 'cron' });
    await eventually(() => fieldError('cron').textContent()).toBe(refused.message);
    expect(await form().getByLabel('Cron expression', { exact: true }).getAttribute('aria-invalid')).toBe(
      'true',
    );
    expect(await fieldError('timezone').count()).toBe(0);
    expect(await preview().locator('li').count()).toBe(0);
    expect(await preview().getByTestId('preview-refused').textContent()).toContain(
      'the expression is refused',
    );
    await page.screenshot({ path: screenshotPath('schedule-refused-cron') });

    await form().getByLabel('Cron expression', { exact: true }).fill('30 4 * * *');
    await form().getByLabel('Time zone', { exact: true }).fill('Mars/Olympus');
    await eventually(() => fieldError('timezone').textContent()).toContain(
      'Mars/Olympus is not an IANA time zone',
    );
    expect(await fieldError('cron').count()).toBe(0);
    expect(
      await form().getByLabel('Cron expression', { exact: true }).getAttribute('aria-invalid'),
    ).toBeNull();
    expect(await preview().getByTestId('preview-refused').textContent()).toContain('the zone is refused');

    await form().getByLabel('Time zone', { exact: true }).fill('Asia/Tokyo');
    await eventually(() => preview().locator('li').count()).toBe(5);
    await form().getByLabel('Name', { exact: true }).fill('nightly');
    await form().getByLabel('Manifest', { exact: true }).fill('stages: [');
    await form().getByRole('button', { name: 'Create' }).click();
    const apiRefusal = await stack.gql<{ createSchedule: { path: string; message: string } }>(
      `mutation { createSchedule(input: { namespace: "team", name: "nightly", cron: "30 4 * * *",
        timezone: "Asia/Tokyo", manifest: "stages: [" }) { ... on InputError { message path } } }`,
    );
    expect(apiRefusal.createSchedule.path).toBe('input.manifest');
    await eventually(() => fieldError('manifest').textContent()).toBe(apiRefusal.createSchedule.message);
    expect(await form().getByLabel('Manifest', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await fieldError('cron').count()).toBe(0);

    await form().getByLabel('Manifest', { exact: true }).fill(MANIFEST);
    await form().getByRole('button', { name: 'Create' }).click();
    await eventually(() => page.getByTestId('created-schedule').textContent()).toContain('nightly');
    expect(await form().count()).toBe(0);
    const nightly = row('nightly');
    await eventually(() => nightly.count()).toBe(1);
    expect(await nightly.getByTestId('schedule-cron').textContent()).toBe('30 4 * * *');
    expect(await nightly.getByTestId('schedule-zone').textContent()).toBe('Asia/Tokyo');
    expect(await nightly.getByTestId('schedule-state').textContent()).toBe('enabled');
    expect(await nightly.getByTestId('no-last-build').textContent()).toBe('no builds yet');
    const stored = (await scheduleNamed('nightly'))!;
    expect(stored).toMatchObject({
      cron: '30 4 * * *',
      timezone: 'Asia/Tokyo',
      enabled: true,
      manifest: MANIFEST,
    });
    expect(await nightly.getByTestId('next-run').locator('time').getAttribute('datetime')).toBe(
      stored.nextRuns[0],
    );
  });

  it('fires a schedule every second: its last build in the list, "scheduled by" on the build', async () => {
    await page.getByRole('button', { name: 'New schedule' }).click();
    await form().getByLabel('Name', { exact: true }).fill('every-second');
    await form().getByLabel('Cron expression', { exact: true }).fill('* * * * * *');
    await eventually(() => preview().locator('li').count()).toBe(5);
    const times = await previewTimes();
    // Six fields: one second apart.
    expect(Date.parse(times[1]!) - Date.parse(times[0]!)).toBe(1000);
    await form().getByLabel('Manifest', { exact: true }).fill(MANIFEST);
    await form().getByRole('button', { name: 'Create' }).click();
    const every = row('every-second');
    await expect.poll(() => every.getByTestId('last-build').count(), { timeout: 20_000 }).toBe(1);
    await page.screenshot({ path: screenshotPath('schedules-firing'), fullPage: true });

    await every.getByRole('button', { name: 'Pause every-second' }).click();
    await eventually(() => every.getByTestId('schedule-state').textContent()).toBe('paused');
    expect(await every.getByTestId('next-run').count()).toBe(0);
    expect(await every.getByTestId('no-next-run').textContent()).toContain('no next run (paused)');
    expect(await every.getByRole('button', { name: 'Resume every-second' }).count()).toBe(1);
    const paused = (await scheduleNamed('every-second'))!;
    expect(paused.enabled).toBe(false);
    expect(paused.nextRuns).toEqual([]);
    // A slot claimed just before the pause may still write its build; after that, nothing more.
    await sleep(1_500);
    const before = (await scheduleNamed('every-second'))!.builds.edges.length;
    expect(before).toBeGreaterThan(0);
    await sleep(3_000);
    expect((await scheduleNamed('every-second'))!.builds.edges.length).toBe(before);

    // The list keeps looking while the last build runs, and shows what it came to.
    const latest = (await scheduleNamed('every-second'))!.builds.edges[0]!.node;
    const lastBuild = every.getByTestId('last-build');
    await expect
      .poll(() => lastBuild.locator('[data-status]').getAttribute('data-status'), { timeout: 30_000 })
      .toBe('PASSED');
    expect(await lastBuild.getByRole('link').getAttribute('href')).toBe(`/builds/${latest.id}`);
    await page.screenshot({ path: screenshotPath('schedules-paused'), fullPage: true });

    await lastBuild.getByRole('link').click();
    await page.waitForURL(/\/builds\/[^/]+$/);
    const cause = page.getByTestId('cause-schedule');
    await eventually(() => cause.textContent()).toMatch(/^scheduled by every-second for /);
    expect(await cause.locator('time').getAttribute('datetime')).toBe(latest.cause.scheduledFor);
    expect(await page.getByTestId('cause-late').count()).toBe(latest.cause.late ? 1 : 0);
    expect(await page.getByTestId('build-cause').textContent()).toMatch(/^schedule/);
    await page.screenshot({ path: screenshotPath('build-scheduled-by') });
  });

  it("shows a schedule's firings and builds on its page, resumes it and deletes it after a confirmation", async () => {
    await page.getByTestId('cause-schedule').getByRole('link', { name: 'every-second' }).click();
    await page.waitForURL(/\/schedules\/[^/]+$/);
    const id = decodeURIComponent(page.url().split('/').pop()!);
    await eventually(() => page.locator('h1').textContent()).toContain('every-second');
    expect(await page.getByTestId('schedule-state').textContent()).toBe('paused');
    const stored = (await scheduleById(id))!;
    const firings = page.getByRole('list', { name: 'Firings' }).locator('.firing');
    await eventually(() => firings.count()).toBeGreaterThan(0);
    const fired = page.locator('.firing[data-state="fired"]');
    expect(await fired.count()).toBeGreaterThan(0);
    const firingBuilds = await fired
      .getByRole('link')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    for (const href of firingBuilds)
      expect(stored.builds.edges.map((e) => `/builds/${e.node.id}`)).toContain(href);
    expect(await fired.first().textContent()).toContain('started 1 build');
    const builds = page.getByRole('list', { name: 'Builds of the schedule' }).getByRole('listitem');
    expect(await builds.count()).toBe(Math.min(10, stored.builds.edges.length));
    expect(await builds.first().getByRole('link').getAttribute('href')).toBe(
      `/builds/${stored.builds.edges[0]!.node.id}`,
    );
    await page.screenshot({ path: screenshotPath('schedule'), fullPage: true });

    await page.getByRole('button', { name: 'Resume every-second' }).click();
    await eventually(() => page.getByTestId('schedule-state').textContent()).toBe('enabled');
    expect(await page.getByTestId('next-run').count()).toBe(1);
    expect((await scheduleById(id))!.enabled).toBe(true);
    // Resumed, it fires again.
    await expect
      .poll(async () => (await scheduleById(id))!.builds.edges.length, { timeout: 15_000 })
      .toBeGreaterThan(stored.builds.edges.length);

    const dismissed = new Promise<string>((resolve) =>
      page.once('dialog', (d) => {
        resolve(d.message());
        void d.dismiss();
      }),
    );
    await page.getByRole('button', { name: 'Delete every-second' }).click();
    expect(await dismissed).toContain('Delete the schedule every-second?');
    expect(await scheduleById(id)).not.toBeNull();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete every-second' }).click();
    await page.waitForURL(/\/namespaces\/admin\/team#schedules$/);
    await eventually(() => row('nightly').count()).toBe(1);
    expect(await row('every-second').count()).toBe(0);
    expect(await scheduleById(id)).toBeNull();
    expect(await scheduleNamed('every-second')).toBeUndefined();
  });

  it("creates a schedule of a repository's branch, and changes it on its page", async () => {
    await page.getByRole('button', { name: 'New schedule' }).click();
    await form().getByLabel('Name', { exact: true }).fill('weekly');
    await form().getByLabel('Cron expression', { exact: true }).fill('0 6 * * 1');
    await form().getByLabel("The head of a repository's branch").check();
    expect(await form().getByLabel('Manifest', { exact: true }).count()).toBe(0);
    await form().getByLabel('Repository', { exact: true }).selectOption({ label: 'origin' });
    expect(await form().getByLabel('Branch (optional)', { exact: true }).getAttribute('placeholder')).toBe(
      'main',
    );
    await form().getByLabel('Branch (optional)', { exact: true }).fill('main');
    await form()
      .getByLabel(/Only on changes/)
      .check();
    await form().getByRole('button', { name: 'Create' }).click();
    const weekly = row('weekly');
    await eventually(() => weekly.count()).toBe(1);
    expect(await weekly.textContent()).toContain('builds origin main, only on changes');
    expect(await scheduleNamed('weekly')).toMatchObject({
      repository: { id: repositoryId },
      branch: 'main',
      onlyOnChanges: true,
      manifest: null,
      timezone: 'UTC',
    });

    await weekly.getByRole('link', { name: 'weekly' }).click();
    await page.waitForURL(/\/schedules\/[^/]+$/);
    await page.getByRole('button', { name: 'Edit' }).click();
    const settings = page.getByRole('form', { name: 'Settings of weekly' });
    expect(await settings.getByLabel('Cron expression', { exact: true }).inputValue()).toBe('0 6 * * 1');
    expect(await settings.getByLabel('Repository', { exact: true }).isDisabled()).toBe(true);
    await settings.getByLabel('Cron expression', { exact: true }).fill('0 7 * * 1');
    await settings.getByLabel('Time zone', { exact: true }).fill('Europe/Berlin');
    const berlin = (await scheduleTimes('0 7 * * 1', 'Europe/Berlin')).times!;
    await expect
      .poll(() =>
        settings
          .getByTestId('schedule-preview')
          .locator('li')
          .evaluateAll((items) => items.map((li) => li.getAttribute('data-time'))),
      )
      .toEqual(berlin);
    await settings.getByRole('button', { name: 'Save' }).click();
    await eventually(() => page.locator('.facts').textContent()).toContain('0 7 * * 1');
    expect(await page.locator('.facts').textContent()).toContain('Europe/Berlin');
    expect(await scheduleNamed('weekly')).toMatchObject({
      cron: '0 7 * * 1',
      timezone: 'Europe/Berlin',
      branch: 'main',
      onlyOnChanges: true,
      nextRuns: [berlin[0]],
    });
  });

  it("shows a schedule's problem prominently in the list, and deletes it from its row", async () => {
    const made = await stack.gql<{ createSchedule: { __typename: string } }>(
      `mutation ($repositoryId: ID!) { createSchedule(input: { namespace: "team", name: "broken",
        cron: "* * * * * *", repositoryId: $repositoryId, branch: "no-such-branch" }) { __typename } }`,
      { repositoryId },
    );
    expect(made.createSchedule.__typename).toBe('CreateScheduleSuccess');
    await page.goto(`${stack.url}/namespaces/admin/team#schedules`);
    const broken = row('broken');
    await expect
      .poll(() => broken.getByTestId('schedule-problem').textContent(), { timeout: 20_000 })
      .toContain('the repository has no branch no-such-branch');
    expect(await broken.getByTestId('schedule-problem').getAttribute('role')).toBe('alert');
    expect(await row('weekly').getByTestId('schedule-problem').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('schedule-problem'), fullPage: true });

    page.once('dialog', (d) => void d.accept());
    await broken.getByRole('button', { name: 'Delete broken' }).click();
    await eventually(() => broken.count()).toBe(0);
    expect(await scheduleNamed('broken')).toBeUndefined();
  });

  it("keeps the viewer's own schedules on the Schedules page, building a manifest only", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
    await page.waitForURL(/\/schedules$/);
    await eventually(() => page.locator('h1').textContent()).toBe('Your schedules');
    await eventually(() => page.locator('#schedules .empty-title').textContent()).toBe('No schedules yet');
    await page.getByRole('button', { name: 'New schedule' }).click();
    expect(await form().getByRole('group', { name: 'Each firing builds' }).count()).toBe(0);
    expect(await form().getByLabel('Repository', { exact: true }).count()).toBe(0);
    await form().getByLabel('Name', { exact: true }).fill('mine');
    await form().getByLabel('Cron expression', { exact: true }).fill('@daily');
    await eventually(() => preview().locator('li').count()).toBe(5);
    await form().getByRole('button', { name: 'Create' }).click();
    await eventually(() => row('mine').count()).toBe(1);
    expect(await row('mine').textContent()).toContain('builds a manifest');
    const own = await stack.gql<{ viewer: { schedules: { name: string; cron: string; namespace: null }[] } }>(
      'query { viewer { schedules { name cron namespace { id } } } }',
    );
    expect(own.viewer.schedules).toEqual([{ name: 'mine', cron: '@daily', namespace: null }]);
    expect((await namespaceSchedules()).map((s) => s.name)).not.toContain('mine');
    await page.screenshot({ path: screenshotPath('own-schedules'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});
