import { Migration } from '@mikro-orm/migrations';

export class Migration20261208023833_webhooks extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "webhooks" ("id" uuid not null, "owner_id" uuid not null, "namespace_id" uuid null, "url" text not null, "subscription" text not null, "encrypted_secret" text not null, "active" boolean not null, "problem" text null, "created_at" timestamptz not null, constraint "webhooks_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "webhooks_owner_id_index" on "webhooks" ("owner_id");`);
    this.addSql(`create index "webhooks_namespace_id_index" on "webhooks" ("namespace_id");`);

    this.addSql(
      `create table "webhook_deliveries" ("id" uuid not null, "webhook_id" uuid not null, "payload" text not null, "state" varchar(16) not null, "response_status" int null, "attempts" int not null default 0, "last_error" text null, "next_attempt_at" timestamptz null, "claimed_until" timestamptz null, "delivered_at" timestamptz null, "created_at" timestamptz not null, constraint "webhook_deliveries_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create index "webhook_deliveries_webhook_id_created_at_index" on "webhook_deliveries" ("webhook_id", "created_at");`,
    );
    this.addSql(
      `create index "webhook_deliveries_due_index" on "webhook_deliveries" ("next_attempt_at") where "state" = 'pending';`,
    );

    this.addSql(
      `alter table "webhooks" add constraint "webhooks_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "webhooks" add constraint "webhooks_namespace_id_foreign" foreign key ("namespace_id") references "namespaces" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "webhook_deliveries" add constraint "webhook_deliveries_webhook_id_foreign" foreign key ("webhook_id") references "webhooks" ("id") on update cascade on delete cascade;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "webhook_deliveries" drop constraint "webhook_deliveries_webhook_id_foreign";`);

    this.addSql(`drop table if exists "webhooks" cascade;`);

    this.addSql(`drop table if exists "webhook_deliveries" cascade;`);
  }
}
