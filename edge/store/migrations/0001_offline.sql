CREATE TABLE `documents` (
	`key` text PRIMARY KEY NOT NULL,
	`path` text NOT NULL,
	`content_type` text NOT NULL,
	`body` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `events` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`stream_id` integer NOT NULL,
	`type` text NOT NULL,
	`namespace` text DEFAULT '' NOT NULL,
	`name` text NOT NULL,
	`rv_num` integer NOT NULL,
	`local` integer DEFAULT false NOT NULL,
	`object` text NOT NULL,
	`at` integer NOT NULL,
	FOREIGN KEY (`stream_id`) REFERENCES `streams`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `events_stream_rv` ON `events` (`stream_id`,`rv_num`);--> statement-breakpoint
CREATE TABLE `outbox` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`method` text NOT NULL,
	`path` text NOT NULL,
	`content_type` text NOT NULL,
	`body` text NOT NULL,
	`uid` text DEFAULT '' NOT NULL,
	`component` text DEFAULT '' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error` text DEFAULT '' NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `outbox_kind` ON `outbox` (`kind`,`seq`);--> statement-breakpoint
CREATE TABLE `streams` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`gvr` text NOT NULL,
	`namespace` text DEFAULT '' NOT NULL,
	`label_selector` text DEFAULT '' NOT NULL,
	`field_selector` text DEFAULT '' NOT NULL,
	`listed` integer DEFAULT false NOT NULL,
	`list_rv` text DEFAULT '' NOT NULL,
	`continuous_from` integer DEFAULT 0 NOT NULL,
	`watermark` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `streams_scope` ON `streams` (`gvr`,`namespace`,`label_selector`,`field_selector`);--> statement-breakpoint
CREATE TABLE `views` (
	`component` text NOT NULL,
	`stream_id` integer NOT NULL,
	`list_rv` text DEFAULT '' NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`stream_id`) REFERENCES `streams`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `views_key` ON `views` (`component`,`stream_id`);