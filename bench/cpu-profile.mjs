// Preloaded into every Kiln process by `npm run bench -- --cpu-prof=DIR` (node refuses --cpu-prof in
// NODE_OPTIONS): profiles the whole process and writes DIR/kiln-<pid>.cpuprofile when it exits.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.KILN_BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  process.once('exit', () => {
    // An in-process session answers synchronously, so this runs to the end even in 'exit'.
    session.post('Profiler.stop', (error, result) => {
      if (!error)
        writeFileSync(path.join(dir, `kiln-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
