/**
 * A page with nothing but the log viewer, for the browser tests: `window.harness.feed(n)` appends n
 * synthetic lines (every tenth one coloured) in chunks, as the buildLog subscription would. Built by
 * test/e2e only; not part of the console's bundle.
 */
import { createSignal } from 'solid-js';
import { render } from 'solid-js/web';
import { LogViewer } from '../src/components/log/LogViewer.tsx';
import { createLogStore } from '../src/components/log/log-store.ts';
import '../src/styles.css';

const store = createLogStore();
const job = { id: 'job-1', name: 'seq' };
store.setJobs([{ id: 'job-0', name: 'setup' }, job]);
store.append({
  attempt: 1,
  firstLine: 1,
  lines: ['preparing', '\x1b[1;32mready\x1b[0m'],
  job: { id: 'job-0', name: 'setup' },
});
const [hash, setHash] = createSignal(window.location.hash);
window.addEventListener('hashchange', () => setHash(window.location.hash));

let next = 1;
const harness = {
  feed(n: number, chunk = 5_000) {
    for (let done = 0; done < n; ) {
      const size = Math.min(chunk, n - done);
      const lines = new Array<string>(size);
      for (let i = 0; i < size; i++) {
        const k = next + i;
        lines[i] = k % 10 === 0 ? `\x1b[33mline ${k}\x1b[0m` : `line ${k}`;
      }
      store.append({ attempt: 1, firstLine: next, lines, job });
      next += size;
      done += size;
    }
    return store.lineCount();
  },
};
(window as unknown as { harness: typeof harness }).harness = harness;

render(
  () => (
    <LogViewer
      store={store}
      hash={hash}
      setHash={(anchor) => {
        window.location.hash = anchor;
      }}
      downloadName="harness.log"
    />
  ),
  document.getElementById('root')!,
);
