CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `objects` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`gvr` text NOT NULL,
	`namespace` text DEFAULT '' NOT NULL,
	`name` text NOT NULL,
	`uid` text DEFAULT '' NOT NULL,
	`resource_version` text NOT NULL,
	`rv_num` integer,
	`object` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `objects_key` ON `objects` (`gvr`,`namespace`,`name`);--> statement-breakpoint
CREATE INDEX `objects_gvr_rv` ON `objects` (`gvr`,`rv_num`);