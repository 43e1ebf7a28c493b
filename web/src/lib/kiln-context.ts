import { createContext, useContext } from 'solid-js';
import type { Session } from './create-session.ts';
import type { KilnClient } from './kiln-client.ts';

/** The session and the API client, for everything below the shell. */
export interface Kiln {
  session: Session;
  client: KilnClient;
}

export const KilnContext = createContext<Kiln>();

export function useKiln(): Kiln {
  const kiln = useContext(KilnContext);
  if (!kiln) throw new Error('useKiln() outside <KilnContext.Provider>');
  return kiln;
}
