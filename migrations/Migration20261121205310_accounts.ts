import { Migration } from '@mikro-orm/migrations';

export class Migration20261121205310_accounts extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "namespaces" ("id" uuid not null, "owner_id" uuid not null, "path" varchar(1400) not null, "name" varchar(64) not null, "parent_id" uuid null, "root_id" uuid not null, "level" int not null, "visibility" varchar(16) not null, "created_at" timestamptz not null, constraint "namespaces_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "namespaces_root_id_index" on "namespaces" ("root_id");`);
    this.addSql(
      `alter table "namespaces" add constraint "namespaces_owner_id_path_unique" unique ("owner_id", "path");`,
    );

    this.addSql(
      `create table "ssh_keys" ("id" uuid not null, "owner_id" uuid not null, "namespace_id" uuid null, "name" varchar(128) not null, "encrypted_key" text not null, "config" text not null default '', "created_at" timestamptz not null, constraint "ssh_keys_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "ssh_keys_owner_id_index" on "ssh_keys" ("owner_id");`);
    this.addSql(`create index "ssh_keys_namespace_id_index" on "ssh_keys" ("namespace_id");`);

    this.addSql(
      `create table "namespace_invites" ("id" uuid not null, "namespace_id" uuid not null, "inviter_id" uuid not null, "invitee_id" uuid not null, "created_at" timestamptz not null, constraint "namespace_invites_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "namespace_invites" add constraint "namespace_invites_namespace_id_invitee_id_unique" unique ("namespace_id", "invitee_id");`,
    );

    this.addSql(
      `create table "namespace_collaborators" ("namespace_id" uuid not null, "user_id" uuid not null, "created_at" timestamptz not null, constraint "namespace_collaborators_pkey" primary key ("namespace_id", "user_id"));`,
    );

    this.addSql(
      `create table "variables" ("id" uuid not null, "owner_id" uuid not null, "namespace_id" uuid null, "key" varchar(128) not null, "value" text null, "encrypted_value" text null, "masked" boolean not null, "created_at" timestamptz not null, constraint "variables_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "variables_owner_id_index" on "variables" ("owner_id");`);
    this.addSql(`create index "variables_namespace_id_index" on "variables" ("namespace_id");`);

    this.addSql(
      `alter table "namespaces" add constraint "namespaces_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "namespaces" add constraint "namespaces_parent_id_foreign" foreign key ("parent_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "ssh_keys" add constraint "ssh_keys_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "ssh_keys" add constraint "ssh_keys_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "namespace_invites" add constraint "namespace_invites_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "namespace_invites" add constraint "namespace_invites_inviter_id_foreign" foreign key ("inviter_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "namespace_invites" add constraint "namespace_invites_invitee_id_foreign" foreign key ("invitee_id") references "users" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "namespace_collaborators" add constraint "namespace_collaborators_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "namespace_collaborators" add constraint "namespace_collaborators_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "variables" add constraint "variables_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "variables" add constraint "variables_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "users" add column "password_hash" varchar(255) null, add column "failed_logins" int not null default 0, add column "locked_until" timestamptz null;`,
    );

    this.addSql(`alter table "builds" add column "namespace_id" uuid null;`);
    this.addSql(
      `alter table "builds" add constraint "builds_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "access_tokens" add column "kind" varchar(16) not null default 'PERSONAL', add column "expires_at" timestamptz null;`,
    );
    this.addSql(`create index "access_tokens_user_id_kind_index" on "access_tokens" ("user_id", "kind");`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "namespaces" drop constraint "namespaces_parent_id_foreign";`);

    this.addSql(`alter table "ssh_keys" drop constraint "ssh_keys_namespace_id_foreign";`);

    this.addSql(`alter table "namespace_invites" drop constraint "namespace_invites_namespace_id_foreign";`);

    this.addSql(
      `alter table "namespace_collaborators" drop constraint "namespace_collaborators_namespace_id_foreign";`,
    );

    this.addSql(`alter table "builds" drop constraint "builds_namespace_id_foreign";`);

    this.addSql(`alter table "variables" drop constraint "variables_namespace_id_foreign";`);

    this.addSql(`drop table if exists "namespaces" cascade;`);

    this.addSql(`drop table if exists "ssh_keys" cascade;`);

    this.addSql(`drop table if exists "namespace_invites" cascade;`);

    this.addSql(`drop table if exists "namespace_collaborators" cascade;`);

    this.addSql(`drop table if exists "variables" cascade;`);

    this.addSql(`drop index "access_tokens_user_id_kind_index";`);
    this.addSql(`alter table "access_tokens" drop column "kind", drop column "expires_at";`);

    this.addSql(`alter table "builds" drop column "namespace_id";`);

    this.addSql(
      `alter table "users" drop column "password_hash", drop column "failed_logins", drop column "locked_until";`,
    );
  }
}
