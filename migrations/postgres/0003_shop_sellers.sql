-- A shop reports orders only to the streams of sellers an admin linked it to.
CREATE TABLE shop_sellers (
    shop_id     TEXT NOT NULL REFERENCES users (id),
    seller_id   TEXT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop_id, seller_id)
);
