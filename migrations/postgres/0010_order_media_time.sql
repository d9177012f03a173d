-- The media time (program date-time of the live edge) at which an order was placed, while
-- its stream was on air: where the seller's order list and a video receipt point.
ALTER TABLE orders ADD COLUMN media_time TIMESTAMPTZ;

-- The seller's order list, newest first, a page at a time.
CREATE INDEX orders_stream_time ON orders (stream_id, created_at, shop_id, order_id);
