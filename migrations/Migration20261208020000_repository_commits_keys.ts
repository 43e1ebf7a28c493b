import { Migration } from '@mikro-orm/migrations';

/** Repositories may build every commit of a push, and fetch ssh clone URLs with a namespace's key. */
export class Migration20261208020000_repository_commits_keys extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `alter table "repositories" add column "build_every_commit" boolean not null default false, add column "ssh_key_id" uuid null;`,
    );
    this.addSql(
      `alter table "repositories" add constraint "repositories_ssh_key_id_foreign" foreign key ("ssh_key_id") references "ssh_keys" ("id") on update cascade on delete set null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "repositories" drop constraint "repositories_ssh_key_id_foreign";`);
    this.addSql(`alter table "repositories" drop column "build_every_commit", drop column "ssh_key_id";`);
  }
}
