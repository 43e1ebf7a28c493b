/**
 * Build variables of a user (namespace null) or of a namespace, as in Djinn: created and deleted,
 * never updated; a key is unique within its scope. A masked value is at least 6 characters, stored
 * only sealed (AES-256-GCM, `value` null) and never returned; builds get it decrypted in their
 * snapshot (snapshot.ts) and the runner masks it in the log.
 *
 * Stored, listed, found and deleted as SSH keys and objects are (scoped-resource.service.ts).
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../../auth/secret-box.ts';
import { type Outcome, ScopedStore, type SecretScope } from './scoped-resource.service.ts';
import { type Variable, VariableSchema } from './variables.entity.ts';

export const VARIABLE_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_KEY_LENGTH = 128;
export const MIN_MASKED_LENGTH = 6;
export const MAX_VALUE_LENGTH = 32 * 1024;
/** Kiln sets these itself (KILN_BUILD_ID, KILN_SSH_…): a stored variable must not shadow them. */
const RESERVED_PREFIX = 'KILN_';

export interface CreateVariableInput {
  key: string;
  value: string;
  masked: boolean;
}

function checkVariable(input: CreateVariableInput): Outcome<null> {
  if (!VARIABLE_KEY.test(input.key) || input.key.length > MAX_KEY_LENGTH) {
    return {
      ok: false,
      path: 'key',
      reason: `a key is up to ${MAX_KEY_LENGTH} letters, digits and _, not starting with a digit`,
    };
  }
  if (input.key.toUpperCase().startsWith(RESERVED_PREFIX)) {
    return { ok: false, path: 'key', reason: `keys starting with ${RESERVED_PREFIX} are reserved for Kiln` };
  }
  if (input.value.length === 0) return { ok: false, path: 'value', reason: 'the value is empty' };
  if (input.value.length > MAX_VALUE_LENGTH) {
    return { ok: false, path: 'value', reason: `a value is at most ${MAX_VALUE_LENGTH} characters` };
  }
  if (input.masked && input.value.length < MIN_MASKED_LENGTH) {
    return {
      ok: false,
      path: 'value',
      reason: `a masked value is at least ${MIN_MASKED_LENGTH} characters, so masking it does not hide ordinary text`,
    };
  }
  return { ok: true, value: null };
}

/** Variables, unique by key in their scope, listed oldest first (the order a build gets them in). */
export const variableStore = new ScopedStore({
  schema: VariableSchema,
  plural: 'variables',
  unique: 'key',
  orderBy: { createdAt: 'asc', id: 'asc' },
});

export function createVariable(
  em: EntityManager,
  secrets: SecretBox,
  scope: SecretScope,
  input: CreateVariableInput,
): Promise<Outcome<Variable>> {
  const checked = checkVariable(input);
  if (!checked.ok) return Promise.resolve(checked);
  return variableStore.create(em, scope, {
    key: input.key,
    value: input.masked ? null : input.value,
    encryptedValue: input.masked ? secrets.seal(input.value) : null,
    masked: input.masked,
  });
}
