import { Migration } from '@mikro-orm/migrations';

export class Migration20261202044603_leases extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "dead_letters" ("id" uuid not null, "kind" varchar(32) null, "reason" text not null, "body" text not null, "created_at" timestamptz not null, constraint "dead_letters_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "dead_letters_created_at_index" on "dead_letters" ("created_at");`);

    this.addSql(
      `alter table "builds" add column "lease" varchar(64) null, add column "lease_seen_at" timestamptz null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "dead_letters" cascade;`);

    this.addSql(`alter table "builds" drop column "lease", drop column "lease_seen_at";`);
  }
}
