//! Every repository test runs on both databases: `sqlite::…` on a file in a temporary
//! folder, `postgres::…` on a database of its own on the tests' PostgreSQL server.

use super::*;
use crate::model::{ClipKind, EndAction};
use chrono::TimeZone;

async fn sqlite(dir: &tempfile::TempDir) -> Db {
    let db = Db::open(&dir.path().join("t.db")).await.unwrap();
    db.migrate().await.unwrap();
    db
}

async fn postgres() -> Db {
    let db = Db::connect(&super::test_postgres::database()).await.unwrap();
    db.migrate().await.unwrap();
    db
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                let dir = tempfile::tempdir().unwrap();
                super::$test(super::sqlite(&dir).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::postgres().await).await;
            })*
        }
    };
}

on_both!(
    webhook_outbox_claims_retries_and_bounds,
    the_next_webhook_is_due_when_its_retry_or_its_claim_ends,
    nodes_find_each_others_streams_and_sum_their_viewers,
    socket_tickets_are_single_use_bounded_and_expire,
    leases_are_held_renewed_expired_and_recovered,
    tokens_expire_rotate_and_revoke_and_guests_are_purged,
    publish_takeover_reconnect_and_keys,
    keys_work_only_inside_their_window,
    settings_round_trip,
    viewer_tokens_map_shop_users_and_expire,
    restart_recovery_and_listing,
    engagement_and_commerce,
    clips_and_replay_videos,
    reminders_are_kept_once_and_fall_due,
    one_node_makes_each_export
);

async fn one_node_makes_each_export(db: Db) {
    let other = db.as_other_node();
    let later = Utc::now() + chrono::Duration::minutes(10);
    assert!(db.claim_export("stream/a", later).await.unwrap());
    assert!(!other.claim_export("stream/a", later).await.unwrap(), "held by the first node");
    assert!(other.claim_export("clip/b", later).await.unwrap(), "another file");
    // Claiming again renews; another node's release gives nothing back.
    assert!(db.claim_export("stream/a", later).await.unwrap());
    other.release_export("stream/a").await.unwrap();
    assert!(!other.claim_export("stream/a", later).await.unwrap());
    db.release_export("stream/a").await.unwrap();
    assert!(other.claim_export("stream/a", later).await.unwrap());
    // A claim left to lapse (its node died) is taken over.
    assert!(db.claim_export("clip/c", Utc::now() - chrono::Duration::seconds(1)).await.unwrap());
    assert!(other.claim_export("clip/c", later).await.unwrap());
}

async fn reminders_are_kept_once_and_fall_due(db: Db) {
    let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
    let (shop, _) = db.create_user("shop", Role::Shop).await.unwrap();
    let (staff_viewer, _) = db.create_user("Vic", Role::Viewer).await.unwrap();
    let grace = db.shop_viewer(&shop.id, "u-7", "Grace").await.unwrap();
    let now = Utc::now();
    let scheduled = |title: &'static str, minutes: i64, remind: Option<i64>, practice: bool| NewStream {
        scheduled_at: Some(now + chrono::Duration::minutes(minutes)),
        remind_minutes_before: remind,
        practice,
        ..NewStream::titled(&seller.id, title)
    };
    let soon = db.create_stream(scheduled("soon", 30, Some(40), false)).await.unwrap();
    // Its early reminder is 110 minutes away.
    db.create_stream(scheduled("later", 120, Some(10), false)).await.unwrap();
    let rehearsal = db.create_stream(scheduled("practice", 30, Some(40), true)).await.unwrap();
    assert_eq!(soon.remind_minutes_before, Some(40));

    assert!(db.add_reminder(&soon.id, &grace.id).await.unwrap());
    assert!(!db.add_reminder(&soon.id, &grace.id).await.unwrap(), "once per viewer");
    assert!(db.add_reminder(&soon.id, &staff_viewer.id).await.unwrap());
    assert_eq!(db.reminder_count(&soon.id).await.unwrap(), 2);
    assert!(db.has_reminder(&soon.id, &grace.id).await.unwrap());
    // Only the shop's own users, as the shop knows them.
    let subscribers = db.shop_subscribers(&soon.id, 0, 500).await.unwrap();
    assert_eq!(subscribers, vec![ShopSubscriber { shop_id: shop.id.clone(), user_id: "u-7".into() }]);
    assert_eq!(db.shop_subscriber_count(&soon.id).await.unwrap(), 1);
    // Pages in order, oldest first.
    let linus = db.shop_viewer(&shop.id, "u-8", "Linus").await.unwrap();
    db.add_reminder(&soon.id, &linus.id).await.unwrap();
    assert_eq!(db.shop_subscribers(&soon.id, 1, 1).await.unwrap()[0].user_id, "u-8");
    assert!(db.shop_subscribers(&soon.id, 2, 1).await.unwrap().is_empty());
    db.remove_reminder(&soon.id, &linus.id).await.unwrap();
    assert!(db.remove_reminder(&soon.id, &staff_viewer.id).await.unwrap());
    assert!(!db.remove_reminder(&soon.id, &staff_viewer.id).await.unwrap());
    assert_eq!(db.reminder_count(&soon.id).await.unwrap(), 1);

    // Due: the early one of `soon` only (not `later` yet, never a practice stream's).
    let due = |db: Db| async move {
        db.due_reminders(Utc::now()).await.unwrap().into_iter().map(|(s, m)| (s.id, m)).collect::<Vec<_>>()
    };
    assert_eq!(due(db.clone()).await, vec![(soon.id.clone(), ReminderMoment::Soon)]);
    assert!(db.claim_reminder(&soon.id, ReminderMoment::Soon).await.unwrap());
    assert!(!db.claim_reminder(&soon.id, ReminderMoment::Soon).await.unwrap(), "sent once");
    assert!(due(db.clone()).await.is_empty());
    // One that could not be sent is given back and due again.
    db.release_reminder(&soon.id, ReminderMoment::Soon).await.unwrap();
    assert_eq!(due(db.clone()).await, vec![(soon.id.clone(), ReminderMoment::Soon)]);
    assert!(db.claim_reminder(&soon.id, ReminderMoment::Soon).await.unwrap());
    // On air: the go-live one, once; a practice stream's never.
    db.begin_publish(&soon.stream_key).await.unwrap().unwrap();
    db.begin_publish(&rehearsal.stream_key).await.unwrap().unwrap();
    assert_eq!(due(db.clone()).await, vec![(soon.id.clone(), ReminderMoment::Live)]);
    assert!(db.claim_reminder(&soon.id, ReminderMoment::Live).await.unwrap());
    assert!(due(db.clone()).await.is_empty());
}

async fn clips_and_replay_videos(db: Db) {
    let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
    let stream = db.create_stream(NewStream::titled(&seller.id, "clipped")).await.unwrap();
    let at = |s: i64| Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap() + chrono::Duration::seconds(s);
    let clip = |id: &str, created: i64| Clip {
        id: id.into(),
        stream_id: stream.id.clone(),
        title: (id == "c1").then(|| "shoes".into()),
        start: at(0),
        end: at(30),
        playlist_path: format!("clips/{id}/index.m3u8"),
        created_by: seller.id.clone(),
        created_at: at(created),
        video_path: None,
        kind: ClipKind::Clip,
        requested: (id == "c1").then(|| (at(3), at(28))),
    };
    db.insert_clip(&clip("c1", 100)).await.unwrap();
    db.insert_clip(&clip("c2", 200)).await.unwrap();
    let listed = db.clips(&stream.id, 10).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c2", "c1"]);
    assert_eq!(listed[1], clip("c1", 100));
    assert_eq!(listed[0], clip("c2", 200));
    assert_eq!(db.count_clips_since(&stream.id, &seller.id, at(150)).await.unwrap(), 1);
    assert!(db.set_clip_video_path("c1", "clips/c1/clip.mp4").await.unwrap());
    assert_eq!(db.clip(&stream.id, "c1").await.unwrap().unwrap().video_path.as_deref(), Some("clips/c1/clip.mp4"));
    assert!(db.clip("other", "c1").await.unwrap().is_none());
    let highlight = Clip { kind: ClipKind::Highlight { product_id: "sku".into() }, ..clip("h1", 300) };
    let receipt = Clip { kind: ClipKind::Receipt { order_ref: "shop/o1".into() }, ..clip("r1", 400) };
    db.insert_clip(&highlight).await.unwrap();
    db.insert_clip(&receipt).await.unwrap();
    let refs = ["shop/o1".to_owned(), "shop/o2".to_owned()];
    assert_eq!(db.receipts(&stream.id, &refs).await.unwrap(), std::slice::from_ref(&receipt));
    // Highlights are listed for saved streams only.
    assert!(db.highlights("sku", 10).await.unwrap().is_empty());
    assert_eq!(db.delete_clips(&stream.id).await.unwrap(), 4);
    assert!(db.clips(&stream.id, 10).await.unwrap().is_empty());

    // A replay's MP4 is recorded only on an archived stream.
    assert!(!db.set_video_path(&stream.id, "replay.mp4").await.unwrap());
    db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    db.transition(&stream.id, Trigger::End(EndAction::Save)).await.unwrap().unwrap();
    let waiting = db.archived_without_video().await.unwrap();
    assert_eq!(waiting.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [stream.id.as_str()]);
    assert!(db.set_video_path(&stream.id, "replay.mp4").await.unwrap());
    assert_eq!(db.stream(&stream.id).await.unwrap().unwrap().video_path.as_deref(), Some("replay.mp4"));
    assert!(db.archived_without_video().await.unwrap().is_empty());
    db.insert_clip(&highlight).await.unwrap();
    let found = db.highlights("sku", 10).await.unwrap();
    assert_eq!(found, [(highlight, stream.playback_id.clone())]);
}

async fn tokens_expire_rotate_and_revoke_and_guests_are_purged(db: Db) {
    let (user, token) = db.create_user("s", Role::Seller).await.unwrap();
    assert!(db.user_by_token(&token).await.unwrap().is_some());
    let expired = db.rotate_token(&user.id, Some(Utc::now() - chrono::Duration::seconds(1))).await.unwrap().unwrap();
    assert!(db.user_by_token(&token).await.unwrap().is_none(), "the old token after a rotation");
    assert!(db.user_by_token(&expired).await.unwrap().is_none(), "an expired token");
    let fresh = db.rotate_token(&user.id, Some(Utc::now() + chrono::Duration::days(1))).await.unwrap().unwrap();
    assert_eq!(db.user_by_token(&fresh).await.unwrap().unwrap().id, user.id);
    assert!(db.token_expiries(&user.id).await.unwrap().unwrap().0.is_some());
    assert!(db.revoke_tokens(&user.id).await.unwrap());
    assert!(db.user_by_token(&fresh).await.unwrap().is_none());
    assert!(db.rotate_token("nobody", None).await.unwrap().is_none());

    // A guest with an expired token and nothing left behind goes; one who chatted stays.
    let quiet = db.create_guest("quiet").await.unwrap();
    let chatty = db.create_guest("chatty").await.unwrap();
    let (viewer, _) = db.create_user("cli viewer", Role::Viewer).await.unwrap();
    let stream = db.create_stream(NewStream::titled(&user.id, "t")).await.unwrap();
    db.insert_chat(&stream.id, &chatty.id, "hi", None).await.unwrap();
    on_pool!(db, pool => {
        sqlx::query("UPDATE users SET created_at = $1")
            .bind(ts(Utc::now() - chrono::Duration::days(2)))
            .execute(pool)
            .await
            .unwrap();
    });
    assert_eq!(db.purge_guests().await.unwrap(), 1);
    assert!(db.user(&quiet.id).await.unwrap().is_none());
    assert!(db.user(&chatty.id).await.unwrap().is_some());
    assert!(db.user(&viewer.id).await.unwrap().is_some(), "only guests are purged");
}

async fn publish_takeover_reconnect_and_keys(db: Db) {
    let (seller, token) = db.create_user("Sam", Role::Seller).await.unwrap();
    assert_eq!(db.user_by_token(&token).await.unwrap().unwrap().id, seller.id);
    assert!(db.user_by_token("hk_nope").await.unwrap().is_none());

    let stream = db.create_stream(NewStream::titled(&seller.id, "Shoes")).await.unwrap();
    assert_eq!(stream.status, StreamStatus::Scheduled);

    assert_eq!(db.begin_publish("sk_wrong").await.unwrap().unwrap_err(), PublishDenied::UnknownKey);
    let first = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    assert_eq!((first.playback_id.as_str(), first.publish_seq), (stream.playback_id.as_str(), 1));
    // The same key again while live: a takeover, with the next publish number.
    let second = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    assert_eq!(second.publish_seq, 2);
    // The taken-over publisher leaving changes nothing; the current one leaving does.
    db.publisher_gone(&stream.id, first.publish_seq).await.unwrap();
    assert_eq!(db.stream(&stream.id).await.unwrap().unwrap().status, StreamStatus::Live);
    db.publisher_gone(&stream.id, second.publish_seq).await.unwrap();
    let now = db.stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(now.status, StreamStatus::Reconnecting);
    assert!(now.started_at.is_some() && now.reconnecting_since.is_some());
    assert_eq!(db.reconnecting_since_before(Utc::now()).await.unwrap().len(), 1);
    assert!(db.reconnecting_since_before(Utc::now() - chrono::Duration::seconds(60)).await.unwrap().is_empty());
    let third = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    assert!(db.stream(&stream.id).await.unwrap().unwrap().reconnecting_since.is_none());

    let reset = db.reset_stream_key(&stream.id).await.unwrap().unwrap();
    assert_ne!(reset.stream_key, stream.stream_key);
    db.publisher_gone(&stream.id, third.publish_seq).await.unwrap();
    assert_eq!(db.begin_publish(&stream.stream_key).await.unwrap().unwrap_err(), PublishDenied::UnknownKey);

    let archived = db.transition(&stream.id, Trigger::End(EndAction::Save)).await.unwrap().unwrap();
    assert!(archived.ended_at.is_some() && archived.reconnecting_since.is_none());
    assert_eq!(
        db.begin_publish(&reset.stream_key).await.unwrap().unwrap_err(),
        PublishDenied::StreamOver(reset.id.clone())
    );
    assert!(db.transition(&stream.id, Trigger::Cancel).await.unwrap().is_none());
}

async fn keys_work_only_inside_their_window(db: Db) {
    let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
    let now = Utc::now();
    let hours = chrono::Duration::hours;
    // Scheduled in two hours: the key opens an hour before.
    let later = NewStream { scheduled_at: Some(now + hours(2)), ..NewStream::titled(&seller.id, "later") };
    let later = db.create_stream(later).await.unwrap();
    assert_eq!(
        db.begin_publish(&later.stream_key).await.unwrap().unwrap_err(),
        PublishDenied::OutsideKeyWindow(later.id.clone())
    );
    // The refusal is kept for its seller, the latest one winning.
    assert_eq!(db.stream_id_by_key(&later.stream_key).await.unwrap(), Some(later.id.clone()));
    assert_eq!(db.stream_id_by_key("sk_wrong").await.unwrap(), None);
    assert_eq!(db.last_refusal(&later.id).await.unwrap(), None);
    db.note_refusal(&later.id, RefusalReason::KeyWindow, "too early").await.unwrap();
    db.note_refusal(&later.id, RefusalReason::VideoCodec, "HEVC").await.unwrap();
    let (reason, detail, at) = db.last_refusal(&later.id).await.unwrap().unwrap();
    assert_eq!((reason, detail.as_str()), (RefusalReason::VideoCodec, "HEVC"));
    assert!((Utc::now() - at).num_seconds().abs() < 5, "{at}");
    // Scheduled in thirty minutes: already open.
    let soon =
        NewStream { scheduled_at: Some(now + chrono::Duration::minutes(30)), ..NewStream::titled(&seller.id, "soon") };
    let soon = db.create_stream(soon).await.unwrap();
    db.begin_publish(&soon.stream_key).await.unwrap().unwrap();
    // Explicit windows win over the default.
    let closed = NewStream { key_valid_until: Some(now - hours(1)), ..NewStream::titled(&seller.id, "closed") };
    let closed = db.create_stream(closed).await.unwrap();
    assert_eq!(
        db.begin_publish(&closed.stream_key).await.unwrap().unwrap_err(),
        PublishDenied::OutsideKeyWindow(closed.id.clone())
    );
    let opened = NewStream {
        scheduled_at: Some(now + hours(5)),
        key_valid_from: Some(now - hours(1)),
        ..NewStream::titled(&seller.id, "opened")
    };
    let opened = db.create_stream(opened).await.unwrap();
    db.begin_publish(&opened.stream_key).await.unwrap().unwrap();
}

async fn settings_round_trip(db: Db) {
    assert_eq!(db.settings().await.unwrap(), Settings::default());
    let changed = Settings::default().patched(serde_json::json!({"reconnect_window_seconds": 7})).unwrap();
    db.save_settings(&changed).await.unwrap();
    assert_eq!(db.settings().await.unwrap().reconnect_window_seconds, 7);
}

async fn viewer_tokens_map_shop_users_and_expire(db: Db) {
    let (shop, _) = db.create_user("shop", Role::Shop).await.unwrap();
    let (other_shop, _) = db.create_user("other shop", Role::Shop).await.unwrap();
    let first = db.shop_viewer(&shop.id, "u-1", "Grace").await.unwrap();
    let again = db.shop_viewer(&shop.id, "u-1", "Grace H.").await.unwrap();
    assert_eq!(again.id, first.id, "the same shop user is the same viewer");
    assert_eq!(again.name, "Grace H.", "the name follows the shop");
    assert_eq!(again.role, Role::Viewer);
    let elsewhere = db.shop_viewer(&other_shop.id, "u-1", "Grace").await.unwrap();
    assert_ne!(elsewhere.id, first.id, "user ids are per shop");

    let token = db.issue_viewer_token(&first.id, Utc::now() + chrono::Duration::seconds(60)).await.unwrap();
    assert_eq!(db.user_by_token(&token).await.unwrap().unwrap().id, first.id);
    let expired = db.issue_viewer_token(&first.id, Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    assert!(db.user_by_token(&expired).await.unwrap().is_none(), "an expired token signs nobody in");
    let guest = db.create_guest("Ada").await.unwrap();
    let guest_token = db.issue_viewer_token(&guest.id, Utc::now() + chrono::Duration::seconds(60)).await.unwrap();
    assert_eq!(db.user_by_token(&guest_token).await.unwrap().unwrap().name, "Ada");
    // Issuing sweeps expired tokens.
    let left: i64 =
        on_pool!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM viewer_tokens").fetch_one(pool).await.unwrap());
    assert_eq!(left, 2);
}

async fn restart_recovery_and_listing(db: Db) {
    let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
    for title in ["a", "b", "c"] {
        db.create_stream(NewStream::titled(&seller.id, title)).await.unwrap();
    }
    let all = db.list_streams(&[StreamStatus::Scheduled], (None, true), Page { limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(all.iter().map(|s| s.title.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
    let second = db.list_streams(&[StreamStatus::Scheduled], (None, true), Page { limit: 2, offset: 2 }).await.unwrap();
    assert_eq!(second.len(), 1);

    db.begin_publish(&all[0].stream_key).await.unwrap().unwrap();
    // The node restarts: its stream waits for the publisher (another node's would not: see
    // the leases test).
    assert_eq!(db.recover_after_restart().await.unwrap(), [all[0].playback_id.clone()]);
    assert_eq!(db.stream(&all[0].id).await.unwrap().unwrap().status, StreamStatus::Reconnecting);
}

async fn engagement_and_commerce(db: Db) {
    let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
    let (viewer, _) = db.create_user("Vi", Role::Viewer).await.unwrap();
    let (shop, _) = db.create_user("Shop", Role::Shop).await.unwrap();
    let stream = db.create_stream(NewStream::titled(&seller.id, "Shoes")).await.unwrap();
    let id = stream.id.as_str();

    // Reactions: one per user, changeable, removable.
    db.set_reaction(id, &viewer.id, Some(1)).await.unwrap();
    db.set_reaction(id, &seller.id, Some(1)).await.unwrap();
    assert_eq!(db.reaction_counts(id).await.unwrap(), (2, 0));
    db.set_reaction(id, &viewer.id, Some(-1)).await.unwrap();
    assert_eq!(db.reaction_counts(id).await.unwrap(), (1, 1));
    assert_eq!(db.reaction_of(id, &viewer.id).await.unwrap(), Some(-1));
    db.set_reaction(id, &viewer.id, None).await.unwrap();
    assert_eq!(db.reaction_counts(id).await.unwrap(), (1, 0));

    // Sessions counted since the last write add up (two nodes' batches); the peak only grows.
    let c = ViewerCounters { peak: 3, unique: 5, replay_views: 1 };
    db.save_viewer_counters(&[(id.to_owned(), c)]).await.unwrap();
    db.save_viewer_counters(&[(id.to_owned(), ViewerCounters { peak: 2, unique: 6, replay_views: 0 })]).await.unwrap();
    assert_eq!(db.viewer_counters(id).await.unwrap(), ViewerCounters { peak: 3, unique: 11, replay_views: 1 });

    // Chat pages, oldest first within a page.
    for n in 0..5 {
        db.insert_chat(id, &viewer.id, &format!("m{n}"), None).await.unwrap();
    }
    let last = db.chat_page(id, None, None, 2).await.unwrap();
    assert_eq!(last.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
    assert_eq!(last[0].user.name, "Vi");
    let before = db.chat_page(id, Some(last[0].id), None, 10).await.unwrap();
    assert_eq!(before.len(), 3);
    let after = db.chat_page(id, None, Some(before[0].id), 2).await.unwrap();
    assert_eq!(after.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
    assert!(db.delete_chat(id, last[1].id).await.unwrap());
    assert!(!db.delete_chat(id, last[1].id).await.unwrap());
    assert_eq!(db.chat_count(id).await.unwrap(), 4);
    db.mute(id, &viewer.id, &seller.id).await.unwrap();
    db.mute(id, &viewer.id, &seller.id).await.unwrap();
    assert!(db.is_muted(id, &viewer.id).await.unwrap());
    assert!(db.unmute(id, &viewer.id).await.unwrap());
    assert!(!db.is_muted(id, &viewer.id).await.unwrap());

    // Pins: one active per product.
    let new_pin = || NewPin {
        stream_id: id,
        product_id: "p1",
        title: "Red shoe",
        price: "19.99",
        currency: "EUR",
        image_url: None,
        url: Some("https://shop.example/p1"),
    };
    let pin = db.insert_pin(new_pin()).await.unwrap().unwrap();
    assert!(db.insert_pin(new_pin()).await.unwrap().is_none());
    let unpinned = db.unpin(id, "p1").await.unwrap().unwrap();
    assert_eq!((unpinned.id.as_str(), unpinned.unpinned_at.is_some()), (pin.id.as_str(), true));
    assert!(db.unpin(id, "p1").await.unwrap().is_none());
    db.insert_pin(new_pin()).await.unwrap().unwrap();
    assert_eq!(db.pins(id, false).await.unwrap().len(), 1);
    assert_eq!(db.pins(id, true).await.unwrap().len(), 2);

    // Orders: idempotent per (shop, order id); totals by product and currency.
    let order = |order_id: &str, product: &str, quantity, amount_e4, currency: &str| Order {
        order_id: order_id.into(),
        stream_id: id.into(),
        product_id: product.into(),
        quantity,
        amount_e4,
        currency: currency.into(),
        created_at: Utc::now(),
        media_time: None,
    };
    assert!(matches!(
        db.record_order(&shop.id, &order("o1", "p1", 2, 399_800, "EUR")).await.unwrap(),
        OrderRecorded::Created(_)
    ));
    assert!(matches!(
        db.record_order(&shop.id, &order("o1", "p1", 2, 399_800, "EUR")).await.unwrap(),
        OrderRecorded::Repeated(_)
    ));
    assert!(matches!(
        db.record_order(&shop.id, &order("o1", "p1", 3, 399_800, "EUR")).await.unwrap(),
        OrderRecorded::Mismatch(_)
    ));
    db.record_order(&shop.id, &order("o2", "p1", 1, 199_900, "EUR")).await.unwrap();
    db.record_order(&shop.id, &order("o3", "p2", 1, 100_000, "USD")).await.unwrap();
    // The seller's list: newest first, a page at a time.
    let ids = |page: &[(OrderCursor, Order)]| page.iter().map(|(_, o)| o.order_id.clone()).collect::<Vec<_>>();
    let first = db.orders_page(id, None, 2).await.unwrap();
    assert_eq!(ids(&first), ["o3", "o2"]);
    let rest = db.orders_page(id, Some(&first[1].0), 2).await.unwrap();
    assert_eq!(ids(&rest), ["o1"]);
    let totals = db.order_totals(id).await.unwrap();
    assert_eq!((totals.orders, totals.units), (3, 4));
    assert_eq!(totals.revenue, vec![("EUR".to_owned(), 599_700), ("USD".to_owned(), 100_000)]);
    assert_eq!(totals.products.len(), 2);
    assert_eq!((totals.products[0].orders, totals.products[0].units), (2, 3));

    // A million orders of the largest amount: far past i64, still exact.
    on_pool!(db, pool => {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
             INSERT INTO orders (shop_id, order_id, stream_id, product_id, quantity, amount_e4, currency, created_at) \
             SELECT $1, 'big' || i, $2, 'p3', 1, $3, 'JPY', $4 FROM n",
        )
        .bind(&shop.id)
        .bind(id)
        .bind(crate::money::MAX_AMOUNT_E4)
        .bind(Ts::now())
        .execute(pool)
        .await
        .unwrap();
    });
    let totals = db.order_totals(id).await.unwrap();
    let jpy = totals.revenue.iter().find(|(c, _)| c == "JPY").unwrap().1;
    assert_eq!(jpy, 1_000_000 * i128::from(crate::money::MAX_AMOUNT_E4));
    assert_eq!(crate::money::format_amount(jpy), "1000000000000000.00");

    // Shops and the sellers they sell for.
    let (seller2, _) = db.create_user("other seller", Role::Seller).await.unwrap();
    assert!(!db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
    assert!(db.link_shop(&shop.id, &seller2.id).await.unwrap());
    assert!(!db.link_shop(&shop.id, &seller2.id).await.unwrap(), "linked once");
    assert!(db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
    assert_eq!(
        db.shop_sellers(&shop.id).await.unwrap().iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [seller2.id.as_str()]
    );
    assert!(db.unlink_shop(&shop.id, &seller2.id).await.unwrap());
    assert!(!db.unlink_shop(&shop.id, &seller2.id).await.unwrap());
    assert!(!db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
}

async fn leases_are_held_renewed_expired_and_recovered(db: Db) {
    let (seller, _) = db.create_user("s", Role::Seller).await.unwrap();
    let stream = db.create_stream(NewStream::titled(&seller.id, "leased")).await.unwrap();
    db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    let other = db.as_other_node();
    assert_eq!(db.renew_leases().await.unwrap(), vec![stream.id.clone()], "the node it was published to holds it");
    assert!(other.renew_leases().await.unwrap().is_empty());
    assert!(other.expire_leases().await.unwrap().is_empty(), "a renewed lease does not expire");

    // After a restart, a stream with a valid lease is another node's on a shared database;
    // on SQLite (one machine) nobody can be publishing it.
    let recovered = other.recover_after_restart().await.unwrap();
    assert_eq!(recovered.len(), usize::from(!db.is_shared()));
    if !db.is_shared() {
        return;
    }
    // The holding node dies: its lease runs out and any node puts the stream back to wait.
    on_pool!(db, pool => {
        sqlx::query("UPDATE streams SET lease_expires_at = $1")
            .bind(ts(Utc::now() - chrono::Duration::seconds(1)))
            .execute(pool)
            .await
            .unwrap();
    });
    let expired = other.expire_leases().await.unwrap();
    assert_eq!(
        expired.iter().map(|s| (s.id.as_str(), s.status)).collect::<Vec<_>>(),
        [(stream.id.as_str(), StreamStatus::Reconnecting)]
    );
    assert_eq!(other.playback(&stream.playback_id).unwrap().status, StreamStatus::Reconnecting);
    assert!(db.renew_leases().await.unwrap().is_empty(), "the lease is gone");
    // The publisher comes back to the other node: it holds the stream now.
    other.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    assert_eq!(other.renew_leases().await.unwrap(), vec![stream.id.clone()]);
    assert!(db.renew_leases().await.unwrap().is_empty());
    // That node restarts: it takes its own stream back to waiting at once.
    assert!(db.recover_after_restart().await.unwrap().is_empty(), "not the restarted node's");
    assert_eq!(other.recover_after_restart().await.unwrap().len(), 1);
}

async fn socket_tickets_are_single_use_bounded_and_expire(db: Db) {
    let soon = Utc::now() + chrono::Duration::seconds(30);
    let past = Utc::now() - chrono::Duration::seconds(1);
    assert!(db.issue_socket_ticket("s", "u", past, 3).await.unwrap().is_some());
    let first = db.issue_socket_ticket("s", "u", soon, 3).await.unwrap().unwrap();
    let second = db.issue_socket_ticket("s", "u", soon, 3).await.unwrap().unwrap();
    assert!(db.issue_socket_ticket("s", "u", soon, 3).await.unwrap().is_some(), "the expired one made room");
    assert!(db.issue_socket_ticket("s", "u", soon, 3).await.unwrap().is_none(), "full of fresh tickets");
    // Another node (the same database) redeems it, once; a ticket for another stream is
    // used up without opening anything.
    let other = db.as_other_node();
    assert_eq!(other.redeem_socket_ticket(&first, "s").await.unwrap().as_deref(), Some("u"));
    assert_eq!(db.redeem_socket_ticket(&first, "s").await.unwrap(), None, "used up");
    assert_eq!(db.redeem_socket_ticket(&second, "elsewhere").await.unwrap(), None, "another stream's");
    assert_eq!(db.redeem_socket_ticket(&second, "s").await.unwrap(), None, "used up by the wrong try");
    assert_eq!(db.redeem_socket_ticket("made-up", "s").await.unwrap(), None);
    let expired = db.issue_socket_ticket("s", "u", past, 10).await.unwrap().unwrap();
    assert_eq!(db.redeem_socket_ticket(&expired, "s").await.unwrap(), None, "expired");
}

/// Two nodes share one limit: 3 acts an hour in all, not 3 each.
#[tokio::test]
async fn shared_rate_limits_count_across_nodes() {
    let a = postgres().await;
    let b = a.as_other_node();
    let hour = std::time::Duration::from_secs(3600);
    assert!(a.allow_shared("guest:192.0.2.1", 3, hour).await.unwrap().is_ok());
    assert!(b.allow_shared("guest:192.0.2.1", 3, hour).await.unwrap().is_ok());
    assert_eq!(b.shared_limit_wait("guest:192.0.2.1", 3, hour).await.unwrap(), None, "a third act may come");
    assert!(a.allow_shared("guest:192.0.2.1", 3, hour).await.unwrap().is_ok());
    let waiting = b.shared_limit_wait("guest:192.0.2.1", 3, hour).await.unwrap().expect("a wait after three");
    let wait = b.allow_shared("guest:192.0.2.1", 3, hour).await.unwrap().unwrap_err();
    assert!(wait > std::time::Duration::from_secs(1000) && wait <= hour / 3, "{wait:?}");
    assert!(waiting.abs_diff(wait) < std::time::Duration::from_secs(2), "{waiting:?} against {wait:?}");
    assert!(a.allow_shared("guest:192.0.2.2", 3, hour).await.unwrap().is_ok(), "another key counts apart");
    assert_eq!(a.purge_rate_limits().await.unwrap(), 0, "both keys still count");
    let (_dir, sqlite) = {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        (dir, db)
    };
    let refused = sqlite.allow_shared("k", 1, hour).await;
    assert!(matches!(refused, Err(DbError::NeedsPostgres(_))), "one machine counts in memory");
}

/// `migrations/postgres/` is the twin of `migrations/sqlite/`: the same migrations, and after
/// them the same tables with the same columns.
#[tokio::test]
async fn both_schemas_have_the_same_tables_and_columns() {
    let names = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!("{}/../migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"), "the migration files");

    let dir = tempfile::tempdir().unwrap();
    let columns = |rows: Vec<(String, String)>| {
        let mut columns: Vec<String> = rows.into_iter().map(|(t, c)| format!("{t}.{c}")).collect();
        columns.sort();
        columns
    };
    let sqlite = match &sqlite(&dir).await.pool {
        Pool::Sqlite(pool) => sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Pool::Postgres(_) => unreachable!(),
    };
    let postgres = match &postgres().await.pool {
        Pool::Postgres(pool) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Pool::Sqlite(_) => unreachable!(),
    };
    let (sqlite, postgres) = (columns(sqlite), columns(postgres));
    assert!(sqlite.len() > 50 && sqlite.contains(&"streams.stream_key_hash".to_owned()), "{sqlite:?}");
    assert_eq!(sqlite, postgres);
}

async fn nodes_find_each_others_streams_and_sum_their_viewers(db: Db) {
    let (seller, _) = db.create_user("s", Role::Seller).await.unwrap();
    let stream = db.create_stream(NewStream::titled(&seller.id, "shared")).await.unwrap();
    let id = stream.id.clone();
    if !db.is_shared() {
        assert!(matches!(db.register_node("http://a").await, Err(DbError::NeedsPostgres(_))));
        assert!(matches!(db.exchange_viewers(&[]).await, Err(DbError::NeedsPostgres(_))));
        return;
    }
    let other = db.as_other_node();
    db.register_node("http://10.0.0.1:8080").await.unwrap();
    other.register_node("http://10.0.0.2:8080").await.unwrap();
    db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
    assert_eq!(other.streams_held_elsewhere().await.unwrap(), vec![(id.clone(), "http://10.0.0.1:8080".to_owned())]);
    assert!(db.streams_held_elsewhere().await.unwrap().is_empty(), "a node's own streams are not elsewhere");

    // Two nodes' sessions add up; the peak is the highest sum, kept when viewers go.
    let totals = |t: Vec<(String, ViewerTotals)>| {
        t.into_iter().map(|(s, t)| (s, t.current, t.counters.peak)).collect::<Vec<_>>()
    };
    assert_eq!(totals(db.exchange_viewers(&[(id.clone(), 2)]).await.unwrap()), vec![(id.clone(), 2, 2)]);
    assert_eq!(totals(other.exchange_viewers(&[(id.clone(), 3)]).await.unwrap()), vec![(id.clone(), 5, 5)]);
    assert_eq!(totals(db.exchange_viewers(&[(id.clone(), 1)]).await.unwrap()), vec![(id.clone(), 4, 5)]);
    assert_eq!(totals(other.exchange_viewers(&[]).await.unwrap()), vec![(id.clone(), 1, 5)]);
    assert!(db.exchange_viewers(&[]).await.unwrap().is_empty(), "nobody watches");
    assert_eq!(db.viewer_counters(&id).await.unwrap().peak, 5);

    // A node not seen lately: its sessions stop counting and nothing is forwarded to it.
    other.exchange_viewers(&[(id.clone(), 7)]).await.unwrap();
    on_pool!(db, pool => {
        let long_ago = ts(Utc::now() - chrono::Duration::seconds(120));
        sqlx::query("UPDATE viewer_presence SET seen_at = $1").bind(long_ago).execute(pool).await.unwrap();
        sqlx::query("UPDATE nodes SET seen_at = $1").bind(long_ago).execute(pool).await.unwrap();
    });
    assert!(db.exchange_viewers(&[]).await.unwrap().is_empty(), "a dead node's sessions do not count");
    assert!(other.streams_held_elsewhere().await.unwrap().is_empty());
    assert_eq!(db.purge_stale_nodes().await.unwrap(), 1);
}

async fn the_next_webhook_is_due_when_its_retry_or_its_claim_ends(db: Db) {
    assert_eq!(db.next_webhook_at().await.unwrap(), None, "nothing waits");
    let before = Utc::now();
    assert!(db.enqueue_webhook("s1", "stream.live", "{}", 10).await.unwrap());
    let due = db.next_webhook_at().await.unwrap().unwrap();
    assert!(due >= before - chrono::Duration::milliseconds(1) && due <= Utc::now(), "due at once: {due}");
    // Claimed: due when the claim lapses; failed: when its retry is.
    let hold = Duration::from_secs(60);
    let claimed = db.claim_webhook(hold).await.unwrap().unwrap();
    let due = db.next_webhook_at().await.unwrap().unwrap();
    assert!(due > Utc::now() + chrono::Duration::seconds(59), "{due}");
    let retry = Utc::now() + chrono::Duration::seconds(8);
    db.retry_webhook(claimed.id, retry).await.unwrap();
    let due = db.next_webhook_at().await.unwrap().unwrap();
    assert!((due - retry).num_milliseconds().abs() <= 1, "{due} against {retry}");
    // The earliest of several.
    assert!(db.enqueue_webhook("s2", "stream.live", "{}", 10).await.unwrap());
    assert!(db.next_webhook_at().await.unwrap().unwrap() <= Utc::now());
    db.drop_webhook(claimed.id).await.unwrap();
    let other = db.claim_webhook(hold).await.unwrap().unwrap();
    db.drop_webhook(other.id).await.unwrap();
    assert_eq!(db.next_webhook_at().await.unwrap(), None);
}

async fn webhook_outbox_claims_retries_and_bounds(db: Db) {
    let other = db.as_other_node();
    assert!(db.enqueue_webhook("s1", "stream.live", "{\"n\":1}", 3).await.unwrap());
    assert!(other.enqueue_webhook("s2", "stream.ended", "{\"n\":2}", 3).await.unwrap());
    assert!(db.enqueue_webhook("s1", "stream.archived", "{\"n\":3}", 3).await.unwrap());
    assert!(!db.enqueue_webhook("s3", "stream.live", "{}", 3).await.unwrap(), "the outbox is full");
    let hold = Duration::from_secs(60);
    // Oldest first; a claimed delivery is no other node's to send; a stream's later delivery
    // waits for its earlier one.
    let first = other.claim_webhook(hold).await.unwrap().unwrap();
    assert_eq!((first.kind.as_str(), first.body.as_str(), first.attempts), ("stream.live", "{\"n\":1}", 0));
    let second = db.claim_webhook(hold).await.unwrap().unwrap();
    assert_eq!(second.kind, "stream.ended");
    assert!(db.claim_webhook(hold).await.unwrap().is_none(), "s1's archived waits for s1's live");
    // A failure waits for its retry, then any node takes it up again.
    db.retry_webhook(first.id, Utc::now() + chrono::Duration::seconds(60)).await.unwrap();
    assert!(db.claim_webhook(hold).await.unwrap().is_none(), "not due yet, and s1's next waits");
    db.retry_webhook(first.id, Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    let again = db.claim_webhook(hold).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (first.id, 2));
    // One event id a delivery, kept over its retries.
    assert!(first.event_id.is_some() && first.event_id != second.event_id);
    assert_eq!(again.event_id, first.event_id);
    db.drop_webhook(again.id).await.unwrap();
    assert_eq!(db.claim_webhook(hold).await.unwrap().unwrap().kind, "stream.archived", "then s1's next");
    // A claim whose node died lapses.
    on_pool!(db, pool => {
        sqlx::query("UPDATE webhook_outbox SET claimed_until = $1")
            .bind(ts(Utc::now() - chrono::Duration::seconds(1)))
            .execute(pool)
            .await
            .unwrap();
    });
    let lapsed = other.claim_webhook(hold).await.unwrap().unwrap();
    assert_eq!(lapsed.id, second.id);
    db.drop_webhook(second.id).await.unwrap();
    assert!(db.enqueue_webhook("s3", "stream.live", "{}", 3).await.unwrap(), "room again");
}
