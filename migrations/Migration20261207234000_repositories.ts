import { Migration } from '@mikro-orm/migrations';

export class Migration20261207234000_repositories extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "repositories" ("id" uuid not null, "namespace_id" uuid not null, "name" varchar(128) not null, "clone_url" text not null, "forge" varchar(16) not null, "default_branch" varchar(255) not null, "manifest_paths" jsonb not null, "include_branches" jsonb not null, "exclude_branches" jsonb not null, "allow_fork_secrets" boolean not null default false, "poll_interval" int null, "forge_api_url" text null, "forge_repository" varchar(512) null, "encrypted_forge_token" text null, "encrypted_webhook_secret" text not null, "last_checked_at" timestamptz null, "problem" text null, "polled_at" timestamptz null, "forge_hook_id" varchar(64) null, "created_at" timestamptz not null, constraint "repositories_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "repositories" add constraint "repositories_namespace_id_name_unique" unique ("namespace_id", "name");`,
    );
    this.addSql(
      `alter table "repositories" add constraint "repositories_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `create table "forge_events" ("id" uuid not null, "repository_id" uuid not null, "delivery_id" varchar(255) null, "event" varchar(64) not null, "received_at" timestamptz not null, "verified" boolean not null, "outcome" text not null, "headers" jsonb not null, "body" text not null, "build_ids" jsonb not null, "replay_of" uuid null, "duplicate" boolean not null default false, constraint "forge_events_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create index "forge_events_repository_id_received_at_index" on "forge_events" ("repository_id", "received_at");`,
    );
    this.addSql(
      `create index "forge_events_repository_id_delivery_id_index" on "forge_events" ("repository_id", "delivery_id");`,
    );
    // A delivery id is taken once per repository: the de-duplication of redelivered events. Refused
    // deliveries, duplicates and replays are recorded beside the original.
    this.addSql(
      `create unique index "forge_events_delivery_unique" on "forge_events" ("repository_id", "delivery_id") where verified and replay_of is null and not duplicate;`,
    );
    this.addSql(
      `alter table "forge_events" add constraint "forge_events_repository_id_foreign" foreign key ("repository_id") references "repositories" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `create table "repository_heads" ("repository_id" uuid not null, "ref" varchar(512) not null, "sha" varchar(40) not null, "updated_at" timestamptz not null, constraint "repository_heads_pkey" primary key ("repository_id", "ref"));`,
    );
    this.addSql(
      `alter table "repository_heads" add constraint "repository_heads_repository_id_foreign" foreign key ("repository_id") references "repositories" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "builds" add column "forge_reported" varchar(32) null, add column "forge_report" text null, add column "forge_report_attempts" int not null default 0, add column "forge_report_next_at" timestamptz null;`,
    );
    // Builds of a repository, newest first (Repository.builds).
    this.addSql(
      `create index "builds_repository_index" on "builds" ((trigger_data->>'repositoryId'), "created_at") where (trigger_data->>'repositoryId') is not null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "builds_repository_index";`);
    this.addSql(
      `alter table "builds" drop column "forge_reported", drop column "forge_report", drop column "forge_report_attempts", drop column "forge_report_next_at";`,
    );
    this.addSql(`drop table if exists "repository_heads" cascade;`);
    this.addSql(`drop table if exists "forge_events" cascade;`);
    this.addSql(`drop table if exists "repositories" cascade;`);
  }
}
