/**
 * Who the console talks to the API as: a bearer token kept in localStorage (an API token pasted on the
 * sign-in page, or the session token `logIn` returns), shared by every tab.
 */
import { type Accessor, createSignal, onCleanup } from 'solid-js';

const KEY = 'kiln.token';

export interface Session {
  token: Accessor<string | null>;
  signIn(token: string): void;
  signOut(): void;
}

function read(): string | null {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function createSession(): Session {
  const [token, setToken] = createSignal(read());
  const onStorage = (e: StorageEvent) => {
    if (e.key === KEY || e.key === null) setToken(read());
  };
  window.addEventListener('storage', onStorage);
  onCleanup(() => window.removeEventListener('storage', onStorage));
  return {
    token,
    signIn(t) {
      localStorage.setItem(KEY, t);
      setToken(t);
    },
    signOut() {
      localStorage.removeItem(KEY);
      setToken(null);
    },
  };
}
