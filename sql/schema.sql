-- The tracker's schema for MariaDB (and MySQL). Idempotent: `tracker init-db` runs it, and the
-- MariaDB container runs it once on its first start (docker-compose.yml mounts this folder).
--
-- The two count tables keep the names, columns and UNIQUE(ad_id, date) of the PHP system this
-- project replaces, so reports written against them keep working. Here (ad_id, date) is the
-- primary key itself; a table created by the PHP system with an extra `id` column works too,
-- since the tracker never reads or writes `id`.

CREATE TABLE IF NOT EXISTS ad_daily_impressions (
    ad_id       INT NOT NULL,
    date        DATE NOT NULL,
    impressions BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (ad_id, date),
    KEY idx_impressions_date (date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS ad_daily_clicks (
    ad_id  INT NOT NULL,
    date   DATE NOT NULL,
    clicks BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (ad_id, date),
    KEY idx_clicks_date (date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per stream shard. `last_ms`-`last_seq` is the ID of the last stream entry whose event
-- is in the counts; it moves in the same transaction as the counts, which is what makes the
-- counting exactly-once. `fence` is the token of the newest drainer: a commit carrying an
-- older token is refused.
CREATE TABLE IF NOT EXISTS stream_offsets (
    stream          VARCHAR(191) NOT NULL,
    last_ms         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    last_seq        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    fence           BIGINT UNSIGNED NOT NULL DEFAULT 0,
    applied         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    committed_at_ms BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (stream)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
