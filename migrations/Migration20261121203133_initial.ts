import { Migration } from '@mikro-orm/migrations';

export class Migration20261121203133_initial extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "build_counters" ("scope" varchar(80) not null, "last_number" int not null, constraint "build_counters_pkey" primary key ("scope"));`,
    );

    this.addSql(
      `create table "outbox" ("id" uuid not null, "kind" varchar(32) not null, "payload" jsonb not null, "created_at" timestamptz not null, "published_at" timestamptz null, constraint "outbox_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "outbox_published_at_index" on "outbox" ("published_at");`);

    this.addSql(
      `create table "runners" ("name" varchar(255) not null, "queues" jsonb not null, "concurrency" int not null, "running" jsonb not null, "first_seen_at" timestamptz not null, "last_seen_at" timestamptz not null, constraint "runners_pkey" primary key ("name"));`,
    );
    this.addSql(`create index "runners_last_seen_at_index" on "runners" ("last_seen_at");`);

    this.addSql(
      `create table "users" ("id" uuid not null, "username" varchar(64) not null, "is_admin" boolean not null default false, "created_at" timestamptz not null, constraint "users_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "users" add constraint "users_username_unique" unique ("username");`);

    this.addSql(
      `create table "builds" ("id" uuid not null, "owner_id" uuid not null, "number_scope" varchar(80) not null, "number" int not null, "status" varchar(32) not null, "manifest" text not null, "comment" text null, "queue" varchar(64) not null, "driver" varchar(32) not null, "timeout_ms" int not null, "attempt" int not null default 0, "runner" varchar(255) null, "last_seq" int null, "reason" text null, "trigger_kind" varchar(16) not null, "trigger_data" jsonb not null, "created_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, constraint "builds_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "builds_created_at_index" on "builds" ("created_at");`);
    this.addSql(`create index "builds_status_index" on "builds" ("status");`);
    this.addSql(
      `alter table "builds" add constraint "builds_number_scope_number_unique" unique ("number_scope", "number");`,
    );

    this.addSql(
      `create table "stages" ("id" uuid not null, "build_id" uuid not null, "position" int not null, "name" varchar(128) not null, "can_fail" boolean not null, constraint "stages_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "stages" add constraint "stages_build_id_position_unique" unique ("build_id", "position");`,
    );

    this.addSql(
      `create table "jobs" ("id" uuid not null, "build_id" uuid not null, "stage_id" uuid not null, "position" int not null, "name" varchar(255) not null, "stage_name" varchar(128) not null, "status" varchar(32) not null, "attempt" int not null default 0, "exit_code" int null, "commands" jsonb not null, "artifacts" jsonb not null, "started_at" timestamptz null, "finished_at" timestamptz null, constraint "jobs_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "jobs" add constraint "jobs_build_id_position_unique" unique ("build_id", "position");`,
    );

    this.addSql(
      `create table "log_chunks" ("build_id" uuid not null, "attempt" int not null, "seq" int not null, "job_id" uuid not null, "first_line" int not null, "line_count" int not null, "content" text not null, "created_at" timestamptz not null, constraint "log_chunks_pkey" primary key ("build_id", "attempt", "seq"));`,
    );

    this.addSql(
      `create table "build_tags" ("build_id" uuid not null, "name" varchar(128) not null, constraint "build_tags_pkey" primary key ("build_id", "name"));`,
    );
    this.addSql(`create index "build_tags_name_index" on "build_tags" ("name");`);

    this.addSql(
      `create table "access_tokens" ("id" uuid not null, "user_id" uuid not null, "name" varchar(128) not null, "token_hash" varchar(64) not null, "scopes" jsonb not null, "created_at" timestamptz not null, "last_used_at" timestamptz null, "revoked_at" timestamptz null, constraint "access_tokens_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "access_tokens" add constraint "access_tokens_token_hash_unique" unique ("token_hash");`,
    );

    this.addSql(
      `alter table "builds" add constraint "builds_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "stages" add constraint "stages_build_id_foreign" foreign key ("build_id") references "builds" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "jobs" add constraint "jobs_build_id_foreign" foreign key ("build_id") references "builds" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "jobs" add constraint "jobs_stage_id_foreign" foreign key ("stage_id") references "stages" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "log_chunks" add constraint "log_chunks_build_id_foreign" foreign key ("build_id") references "builds" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "log_chunks" add constraint "log_chunks_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "build_tags" add constraint "build_tags_build_id_foreign" foreign key ("build_id") references "builds" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "access_tokens" add constraint "access_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "builds" drop constraint "builds_owner_id_foreign";`);

    this.addSql(`alter table "access_tokens" drop constraint "access_tokens_user_id_foreign";`);

    this.addSql(`alter table "stages" drop constraint "stages_build_id_foreign";`);

    this.addSql(`alter table "jobs" drop constraint "jobs_build_id_foreign";`);

    this.addSql(`alter table "log_chunks" drop constraint "log_chunks_build_id_foreign";`);

    this.addSql(`alter table "build_tags" drop constraint "build_tags_build_id_foreign";`);

    this.addSql(`alter table "jobs" drop constraint "jobs_stage_id_foreign";`);

    this.addSql(`alter table "log_chunks" drop constraint "log_chunks_job_id_foreign";`);

    this.addSql(`drop table if exists "build_counters" cascade;`);

    this.addSql(`drop table if exists "outbox" cascade;`);

    this.addSql(`drop table if exists "runners" cascade;`);

    this.addSql(`drop table if exists "users" cascade;`);

    this.addSql(`drop table if exists "builds" cascade;`);

    this.addSql(`drop table if exists "stages" cascade;`);

    this.addSql(`drop table if exists "jobs" cascade;`);

    this.addSql(`drop table if exists "log_chunks" cascade;`);

    this.addSql(`drop table if exists "build_tags" cascade;`);

    this.addSql(`drop table if exists "access_tokens" cascade;`);
  }
}
