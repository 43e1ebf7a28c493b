/**
 * Who may see and change what, for one request. A namespace's visibility and collaborators are its
 * root's: the owner and collaborators may write (submit builds, manage variables and keys), readers
 * may read; PUBLIC namespaces are readable by anyone, INTERNAL ones by anyone signed in. A build
 * without a namespace belongs to the user who submitted it. Admins may do everything.
 * Lookups are cached for the request.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Build } from '../modules/builds/builds.entity.ts';
import type { Namespace } from '../modules/namespaces/namespaces.entity.ts';
import type { Auth } from './principal.ts';

export type Role = 'owner' | 'collaborator' | 'reader';

export class Access {
  private readonly collaborations = new Map<string, Promise<boolean>>();
  private readonly invitations = new Map<string, Promise<boolean>>();
  private readonly namespaces = new Map<string, Promise<Namespace | null>>();

  constructor(
    private readonly em: EntityManager,
    readonly auth: Auth,
  ) {}

  get viewerId(): string | null {
    return this.auth.viewer?.id ?? null;
  }

  get isAdmin(): boolean {
    return this.auth.viewer?.isAdmin ?? false;
  }

  private collaborates(rootId: string): Promise<boolean> {
    const viewer = this.viewerId;
    if (!viewer) return Promise.resolve(false);
    let found = this.collaborations.get(rootId);
    if (!found) {
      found = this.em
        .execute<{ n: number }[]>(
          'select 1 as n from namespace_collaborators where namespace_id = ? and user_id = ?',
          [rootId, viewer],
        )
        .then((rows) => rows.length > 0);
      this.collaborations.set(rootId, found);
    }
    return found;
  }

  /** Whether the viewer has an unanswered invite to collaborate on this root namespace. */
  invitedTo(rootId: string): Promise<boolean> {
    const viewer = this.viewerId;
    if (!viewer) return Promise.resolve(false);
    let found = this.invitations.get(rootId);
    if (!found) {
      found = this.em
        .execute<{ n: number }[]>(
          'select 1 as n from namespace_invites where namespace_id = ? and invitee_id = ?',
          [rootId, viewer],
        )
        .then((rows) => rows.length > 0);
      this.invitations.set(rootId, found);
    }
    return found;
  }

  /** Whether `ns` is inside the tree the auth is confined to (always, when it is not). */
  private inside(ns: Namespace): boolean {
    const within = this.auth.within;
    if (!within) return true;
    return ns.rootId === within.rootId && (ns.path === within.path || ns.path.startsWith(`${within.path}/`));
  }

  async role(ns: Namespace): Promise<Role | null> {
    if (!this.inside(ns)) return null;
    if (this.isAdmin || (this.viewerId && ns.owner.id === this.viewerId)) return 'owner';
    if (await this.collaborates(ns.rootId)) return 'collaborator';
    if (ns.visibility === 'PUBLIC' || (ns.visibility === 'INTERNAL' && this.viewerId)) return 'reader';
    return null;
  }

  async canRead(ns: Namespace): Promise<boolean> {
    return (await this.role(ns)) !== null;
  }

  async canWrite(ns: Namespace): Promise<boolean> {
    const role = await this.role(ns);
    return role === 'owner' || role === 'collaborator';
  }

  namespaceOf(build: Build): Promise<Namespace | null> {
    const id = build.namespace?.id;
    if (!id) return Promise.resolve(null);
    let ns = this.namespaces.get(id);
    if (!ns) {
      ns = this.em.findOne('Namespace', { id }) as Promise<Namespace | null>;
      this.namespaces.set(id, ns);
    }
    return ns;
  }

  async canReadBuild(build: Build): Promise<boolean> {
    const ns = await this.namespaceOf(build);
    if (ns) return this.canRead(ns);
    if (this.auth.within) return false;
    return this.isAdmin || (this.viewerId !== null && build.owner.id === this.viewerId);
  }

  async canWriteBuild(build: Build): Promise<boolean> {
    const ns = await this.namespaceOf(build);
    if (ns) return this.canWrite(ns);
    if (this.auth.within) return false;
    return this.isAdmin || (this.viewerId !== null && build.owner.id === this.viewerId);
  }

  /**
   * A SQL condition on a builds table aliased `alias` that keeps the builds this viewer may read,
   * with its parameters: lists are filtered in the database, not after loading.
   */
  visibleBuildsSql(alias: string): { sql: string; params: unknown[] } {
    const visible = this.visibleBuildsSqlUnconfined(alias);
    const within = this.auth.within;
    if (!within) return visible;
    return {
      sql: `(${visible.sql}) and ${alias}.namespace_id in (
        select id from namespaces where root_id = ? and (path = ? or path like ?))`,
      params: [...visible.params, within.rootId, within.path, `${within.path.replace(/[\\%_]/g, '\\$&')}/%`],
    };
  }

  private visibleBuildsSqlUnconfined(alias: string): { sql: string; params: unknown[] } {
    if (this.isAdmin) return { sql: 'true', params: [] };
    const viewer = this.viewerId;
    if (!viewer) {
      return {
        sql: `${alias}.namespace_id in (select id from namespaces where visibility = 'PUBLIC')`,
        params: [],
      };
    }
    return {
      sql: `((${alias}.namespace_id is null and ${alias}.owner_id = ?) or ${alias}.namespace_id in (
        select n.id from namespaces n where n.owner_id = ? or n.visibility in ('PUBLIC', 'INTERNAL')
          or n.root_id in (select namespace_id from namespace_collaborators where user_id = ?)))`,
      params: [viewer, viewer, viewer],
    };
  }
}
