import { Migration } from '@mikro-orm/migrations';

/** Objects, artifacts (content-addressed blobs in the file store), pinned builds, cleanup limits. */
export class Migration20261121220000_files extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "objects" ("id" uuid not null, "owner_id" uuid not null, "namespace_id" uuid null, "name" varchar(255) not null, "content_type" varchar(255) not null, "size" bigint not null, "md5" varchar(32) not null, "sha256" varchar(64) not null, "created_at" timestamptz not null, constraint "objects_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "objects_owner_id_index" on "objects" ("owner_id");`);
    this.addSql(`create index "objects_namespace_id_index" on "objects" ("namespace_id");`);
    this.addSql(`create index "objects_sha256_index" on "objects" ("sha256");`);

    this.addSql(
      `create table "artifacts" ("id" uuid not null, "build_id" uuid not null, "job_id" uuid not null, "name" varchar(255) not null, "size" bigint not null, "md5" varchar(32) not null, "sha256" varchar(64) not null, "created_at" timestamptz not null, "deleted_at" timestamptz null, constraint "artifacts_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "artifacts_build_id_index" on "artifacts" ("build_id");`);
    this.addSql(`create index "artifacts_job_id_index" on "artifacts" ("job_id");`);
    this.addSql(`create index "artifacts_sha256_index" on "artifacts" ("sha256");`);
    this.addSql(`create index "artifacts_created_at_index" on "artifacts" ("created_at");`);

    this.addSql(
      `alter table "objects" add constraint "objects_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "objects" add constraint "objects_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "artifacts" add constraint "artifacts_build_id_foreign" foreign key ("build_id") references "builds" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "artifacts" add constraint "artifacts_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(`alter table "builds" add column "pinned" boolean not null default false;`);
    this.addSql(`alter table "users" add column "cleanup_bytes" bigint not null default 1073741824;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "artifacts" cascade;`);
    this.addSql(`drop table if exists "objects" cascade;`);
    this.addSql(`alter table "builds" drop column "pinned";`);
    this.addSql(`alter table "users" drop column "cleanup_bytes";`);
  }
}
