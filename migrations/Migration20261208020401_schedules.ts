import { Migration } from '@mikro-orm/migrations';

/** Cron schedules and the slots they claimed (issue: schedules). */
export class Migration20261208020401_schedules extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "schedules" ("id" uuid not null, "owner_id" uuid not null, "namespace_id" uuid null, "name" varchar(128) not null, "cron" varchar(256) not null, "timezone" varchar(64) not null, "enabled" boolean not null, "manifest" text null, "repository_id" uuid null, "branch" varchar(255) null, "only_on_changes" boolean not null default false, "next_run_at" timestamptz null, "last_run_at" timestamptz null, "last_sha" varchar(40) null, "problem" text null, "created_at" timestamptz not null, constraint "schedules_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "schedules_owner_id_index" on "schedules" ("owner_id");`);
    this.addSql(`create index "schedules_namespace_id_index" on "schedules" ("namespace_id");`);
    this.addSql(`create index "schedules_due_index" on "schedules" ("next_run_at") where "enabled";`);

    this.addSql(
      `create table "schedule_firings" ("id" uuid not null, "schedule_id" uuid not null, "slot" timestamptz not null, "claimed_at" timestamptz not null, "state" varchar(16) not null, "late" boolean not null default false, "outcome" text null, "build_ids" jsonb not null, constraint "schedule_firings_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create index "schedule_firings_pending_index" on "schedule_firings" ("claimed_at") where "state" = 'pending';`,
    );
    this.addSql(
      `alter table "schedule_firings" add constraint "schedule_firings_schedule_id_slot_unique" unique ("schedule_id", "slot");`,
    );

    this.addSql(
      `alter table "schedules" add constraint "schedules_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "schedules" add constraint "schedules_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "schedules" add constraint "schedules_repository_id_foreign" foreign key ("repository_id") references "repositories" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "schedule_firings" add constraint "schedule_firings_schedule_id_foreign" foreign key ("schedule_id") references "schedules" ("id") on update cascade on delete cascade;`,
    );

    // Builds of a schedule, newest first (Schedule.builds).
    this.addSql(
      `create index "builds_schedule_index" on "builds" ((trigger_data->>'scheduleId'), "created_at") where (trigger_data->>'scheduleId') is not null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "builds_schedule_index";`);
    this.addSql(`alter table "schedule_firings" drop constraint "schedule_firings_schedule_id_foreign";`);

    this.addSql(`drop table if exists "schedules" cascade;`);

    this.addSql(`drop table if exists "schedule_firings" cascade;`);
  }
}
