import { decodeGlobalID } from '@pothos/plugin-relay';

/** Decodes a global ID of the given type; null for anything else, so a wrong ID reads as not found. */
export function localId(globalId: string, typename: string): string | null {
  try {
    const { typename: t, id } = decodeGlobalID(globalId);
    return t === typename && /^[0-9a-f-]{36}$/i.test(id) ? id : null;
  } catch {
    return null;
  }
}
