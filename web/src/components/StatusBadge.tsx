import { type BuildStatus, type JobStatus, statusLabel, statusTone } from '../lib/status.ts';

/** A status as a coloured pill with a shape cue, so it does not rely on colour alone. */
export function StatusBadge(props: { status: BuildStatus | JobStatus; small?: boolean }) {
  const icon = () => {
    switch (statusTone(props.status)) {
      case 'ok':
        return '✓';
      case 'warn':
        return '!';
      case 'bad':
        return '✕';
      case 'live':
        return '●';
      case 'idle':
        return '○';
    }
  };
  return (
    <span
      class={`badge badge-${statusTone(props.status)}`}
      classList={{ 'badge-small': props.small }}
      data-status={props.status}
    >
      <span aria-hidden="true">{icon()}</span> {statusLabel(props.status)}
    </span>
  );
}
