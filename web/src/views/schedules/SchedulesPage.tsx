import { SchedulesPanel } from './SchedulesPanel.tsx';

/** The viewer's own schedules (those of no namespace): only they see and change them. */
export default function SchedulesPage() {
  return (
    <section class="page">
      <SchedulesPanel canWrite />
    </section>
  );
}
