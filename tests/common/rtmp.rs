//! A scripted RTMP client for inputs no real encoder sends: rml_rtmp's client session for the
//! well-formed part, raw chunks for the rest.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects and completes the RTMP handshake.
pub async fn handshaken(addr: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().expect("c0c1");
    socket.write_all(&c0c1).await.expect("write c0c1");
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.expect("read handshake");
        assert!(n > 0, "server closed during the handshake");
        match handshake.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => socket.write_all(&response_bytes).await.unwrap(),
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                socket.write_all(&response_bytes).await.unwrap();
                return socket;
            }
        }
    }
}

/// Reads until the server closes the connection (EOF or reset); panics after `within`.
pub async fn wait_closed(socket: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection within {within:?}");
}

pub fn command(name: &str, object: Amf0Value, args: Vec<Amf0Value>, stream: u32) -> Vec<u8> {
    let message = RtmpMessage::Amf0Command {
        command_name: name.to_owned(),
        transaction_id: 2.0,
        command_object: object,
        additional_arguments: args,
    };
    chunks(message.into_message_payload(RtmpTimestamp::new(0), stream).expect("payload"))
}

pub fn video_message(timestamp: u32, data: &'static [u8]) -> Vec<u8> {
    let message = RtmpMessage::VideoData { data: Bytes::from_static(data) };
    chunks(message.into_message_payload(RtmpTimestamp::new(timestamp), 1).expect("payload"))
}

fn chunks(payload: MessagePayload) -> Vec<u8> {
    ChunkSerializer::new().serialize(&payload, true, false).expect("chunks").bytes
}

/// A client that has connected to `live` and is publishing with `key`.
pub struct Publisher {
    socket: TcpStream,
    session: ClientSession,
}

impl Publisher {
    pub async fn start(addr: &str, key: &str) -> Publisher {
        let socket = handshaken(addr).await;
        let (session, results) = ClientSession::new(ClientSessionConfig::new()).expect("session");
        let mut publisher = Publisher { socket, session };
        publisher.send(results).await;
        let request = publisher.session.request_connection("live".into()).expect("connect");
        publisher.send(vec![request]).await;
        publisher.wait_for(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted)).await;
        let request = publisher.session.request_publishing(key.into(), PublishRequestType::Live).expect("publish");
        publisher.send(vec![request]).await;
        publisher.wait_for(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted)).await;
        publisher
    }

    async fn send(&mut self, results: Vec<ClientSessionResult>) {
        self.try_send(results).await.expect("write");
    }

    async fn try_send(&mut self, results: Vec<ClientSessionResult>) -> std::io::Result<()> {
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                self.socket.write_all(&packet.bytes).await?;
            }
        }
        Ok(())
    }

    async fn wait_for(&mut self, wanted: impl Fn(&ClientSessionEvent) -> bool) {
        let mut buf = [0u8; 8192];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .expect("server answer")
                .expect("read");
            assert!(n > 0, "the server closed the connection");
            let results = self.session.handle_input(&buf[..n]).expect("client session");
            let mut found = false;
            for result in &results {
                if let ClientSessionResult::RaisedEvent(event) = result {
                    found |= wanted(event);
                }
            }
            self.send(results).await;
            if found {
                return;
            }
        }
    }

    /// Sends one FLV tag body as video (`is_video`) or audio. Err once the server closed.
    pub async fn send_tag(&mut self, is_video: bool, timestamp: u32, data: Bytes) -> std::io::Result<()> {
        let timestamp = RtmpTimestamp::new(timestamp);
        let result = if is_video {
            self.session.publish_video_data(data, timestamp, false)
        } else {
            self.session.publish_audio_data(data, timestamp, false)
        }
        .expect("packet");
        self.try_send(vec![result]).await
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }
}

/// The tags of an FLV file: (is_video, timestamp ms, body).
pub fn flv_tags(flv: &[u8]) -> Vec<(bool, u32, Bytes)> {
    let mut tags = Vec::new();
    let mut at = 13; // header (9) + PreviousTagSize0 (4)
    while at + 11 <= flv.len() {
        let kind = flv[at];
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        let timestamp = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]);
        let body = at + 11;
        if body + size > flv.len() {
            break;
        }
        if kind == 8 || kind == 9 {
            tags.push((kind == 9, timestamp, Bytes::copy_from_slice(&flv[body..body + size])));
        }
        at = body + size + 4;
    }
    tags
}
