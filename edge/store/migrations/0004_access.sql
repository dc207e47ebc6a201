CREATE TABLE `access` (
	`component` text NOT NULL,
	`verb` text NOT NULL,
	`gvr` text NOT NULL,
	`namespace` text DEFAULT '' NOT NULL,
	`name` text DEFAULT '' NOT NULL,
	`label_selector` text DEFAULT '' NOT NULL,
	`field_selector` text DEFAULT '' NOT NULL,
	`status` integer NOT NULL,
	`refusal` text,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `access_key` ON `access` (`component`,`verb`,`gvr`,`namespace`,`name`,`label_selector`,`field_selector`);