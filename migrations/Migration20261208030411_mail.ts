import { Migration } from '@mikro-orm/migrations';

/** Build mail: users' addresses and preferences, mailed links, and which builds were mailed. */
export class Migration20261208030411_mail extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "mail_tokens" ("id" uuid not null, "user_id" uuid not null, "purpose" varchar(16) not null, "token_hash" varchar(64) not null, "email" varchar(320) null, "expires_at" timestamptz not null, "used_at" timestamptz null, "created_at" timestamptz not null, constraint "mail_tokens_pkey" primary key ("id"));`,
    );
    this.addSql(
      `alter table "mail_tokens" add constraint "mail_tokens_token_hash_unique" unique ("token_hash");`,
    );
    this.addSql(`create index "mail_tokens_user_id_index" on "mail_tokens" ("user_id");`);

    this.addSql(
      `alter table "mail_tokens" add constraint "mail_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "users" add column "email" varchar(320) null, add column "email_verified" boolean not null default false, add column "notify" varchar(24) not null default 'FAILURES';`,
    );

    // Builds finished before mail existed are taken as mailed: configuring SMTP later mails none of them.
    this.addSql(`alter table "builds" add column "mailed" boolean not null default true;`);
    this.addSql(`alter table "builds" alter column "mailed" set default false;`);
    // Finished builds not yet mailed, oldest first (the build-mail job).
    this.addSql(
      `create index "builds_unmailed_index" on "builds" ("finished_at") where not "mailed" and "finished_at" is not null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "mail_tokens" cascade;`);

    this.addSql(`drop index if exists "builds_unmailed_index";`);
    this.addSql(`alter table "builds" drop column "mailed";`);

    this.addSql(
      `alter table "users" drop column "email", drop column "email_verified", drop column "notify";`,
    );
  }
}
