import { describe, expect, it } from 'vitest';
import { waitFor } from './wait.ts';

describe('waitFor', () => {
  it('resolves with the first truthy value the check returns, asynchronous or not', async () => {
    let calls = 0;
    expect(await waitFor('the third call', () => ++calls >= 3 && calls)).toBe(3);
    expect(await waitFor('a query', async () => ({ status: 'PASSED' }))).toEqual({ status: 'PASSED' });
  });

  it('fails naming what it waited for when the condition never holds', async () => {
    await expect(waitFor('the build to pass', () => false, { timeoutMs: 30 })).rejects.toThrow(
      'timed out after 30 ms waiting for the build to pass',
    );
  });

  it('can say in its message the last state it saw', async () => {
    let status = 'QUEUED';
    const check = () => {
      status = 'RUNNING';
      return false;
    };
    await expect(
      waitFor(() => `the build to pass (it is ${status})`, check, { timeoutMs: 30 }),
    ).rejects.toThrow('waiting for the build to pass (it is RUNNING)');
  });

  it('ends the wait with the error the check throws', async () => {
    await expect(
      waitFor('a broken check', () => {
        throw new Error('no such build');
      }),
    ).rejects.toThrow('no such build');
  });
});
