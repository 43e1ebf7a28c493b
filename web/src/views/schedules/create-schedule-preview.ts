import { type Accessor, createEffect, createSignal, on, onCleanup } from 'solid-js';
import { useKiln } from '../../lib/kiln-context.ts';
import { ScheduleTimes } from './schedule-documents.ts';

/** What the API made of an expression and a zone: their next times, or the field it refuses. */
export type Preview =
  | { state: 'idle' }
  | { state: 'loading' }
  | { state: 'times'; times: string[] }
  | { state: 'refused'; message: string; path: string | null }
  | { state: 'failed'; message: string };

/**
 * The next `count` times of `cron` in `zone` (UTC when blank), asked of the API (`scheduleTimes`, so
 * that the preview refuses exactly what createSchedule would) `delayMs` after the last keystroke. An
 * answer to older text than the newest is dropped. Always from the network: the times depend on now.
 */
export function createSchedulePreview(
  cron: Accessor<string>,
  zone: Accessor<string>,
  opts: { count?: number; delayMs?: number } = {},
): Accessor<Preview> {
  const { client } = useKiln();
  const [preview, setPreview] = createSignal<Preview>({ state: 'idle' });
  let asked = 0;

  createEffect(
    on([cron, zone], ([c, z]) => {
      const text = c.trim();
      const seq = ++asked;
      if (text === '') {
        setPreview({ state: 'idle' });
        return;
      }
      setPreview((p) => (p.state === 'idle' ? { state: 'loading' } : p));
      const timer = setTimeout(async () => {
        const result = await client.urql
          .query(
            ScheduleTimes,
            { cron: text, timezone: z.trim() || null, first: opts.count ?? 5 },
            { requestPolicy: 'network-only' },
          )
          .toPromise();
        if (seq !== asked) return;
        const r = result.data?.scheduleTimes;
        if (result.error) setPreview({ state: 'failed', message: result.error.message });
        else if (r?.__typename === 'ScheduleTimesSuccess') setPreview({ state: 'times', times: r.times });
        else if (r?.__typename === 'InputError')
          setPreview({ state: 'refused', message: r.message, path: r.path ?? null });
        else setPreview({ state: 'failed', message: 'no answer from the server' });
      }, opts.delayMs ?? 300);
      onCleanup(() => clearTimeout(timer));
    }),
  );
  return preview;
}
