use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt};
use tokio_stream::StreamExt;
use tokio_util::codec::Framed;

use crate::framed::AsyncReadWrite;

use super::mqttbytes::v5::Packet;
use super::{mqttbytes, Codec, Incoming, MqttState, StateError};

/// ledtrad: the room a connection's read buffer starts with (tokio-util's `Framed` starts each
/// buffer with 8 KiB), enough for the few small packets a device gets at once. The write buffer
/// holds room only while it holds packets: a device's connection is idle most of the time.
const INITIAL_CAPACITY: usize = 1024;

/// ledtrad: a read buffer that took a packet larger than this (a retained catalogue of a few
/// KiB) is replaced by a new small one once it is empty, rather than keeping the room it grew to.
const KEPT_CAPACITY: usize = 4 * 1024;

/// Network transforms packets <-> frames efficiently. It takes
/// advantage of pre-allocation, buffering and vectorization when
/// appropriate to achieve performance
pub struct Network {
    /// Frame MQTT packets from network connection
    framed: Framed<Box<dyn AsyncReadWrite>, Codec>,
    /// Maximum readv count
    max_readb_count: usize,
    /// ledtrad: a packet larger than `KEPT_CAPACITY` went through the read buffer since it was
    /// last made.
    read_grown: bool,
}

/// ledtrad: whether `packet` makes a buffer grow past `KEPT_CAPACITY`. Only a publish can be
/// that large. (A buffer's `capacity()` cannot tell: reading advances it, and it reports the
/// room left after that, not the room it holds.)
fn large(packet: &Packet) -> bool {
    matches!(packet, Packet::Publish(p) if p.topic.len() + p.payload.len() > KEPT_CAPACITY)
}
impl Network {
    pub fn new(socket: impl AsyncReadWrite + 'static, max_incoming_size: Option<u32>) -> Network {
        let socket = Box::new(socket) as Box<dyn AsyncReadWrite>;
        let codec = Codec {
            max_incoming_size,
            max_outgoing_size: None,
        };
        let mut framed = Framed::with_capacity(socket, codec, INITIAL_CAPACITY);
        *framed.write_buffer_mut() = BytesMut::new();

        Network {
            framed,
            max_readb_count: 10,
            read_grown: false,
        }
    }

    pub fn set_max_outgoing_size(&mut self, max_outgoing_size: Option<u32>) {
        self.framed.codec_mut().max_outgoing_size = max_outgoing_size;
    }

    /// Reads and returns a single packet from network
    pub async fn read(&mut self) -> Result<Incoming, StateError> {
        let read = self.framed.next().await;
        if let Some(Ok(packet)) = &read {
            self.read_grown |= large(packet);
        }
        self.give_back_room();
        match read {
            Some(Ok(packet)) => Ok(packet),
            Some(Err(mqttbytes::Error::InsufficientBytes(_))) => unreachable!(),
            Some(Err(e)) => Err(StateError::Deserialization(e)),
            None => Err(StateError::ConnectionAborted),
        }
    }

    /// Read packets in bulk. This allow replies to be in bulk. This method is used
    /// after the connection is established to read a bunch of incoming packets
    pub async fn readb(&mut self, state: &mut MqttState) -> Result<(), StateError> {
        // wait for the first read
        let mut res = self.framed.next().await;
        let mut count = 1;
        loop {
            match res {
                Some(Ok(packet)) => {
                    self.read_grown |= large(&packet);
                    if let Some(outgoing) = state.handle_incoming_packet(packet)? {
                        self.write(outgoing).await?;
                    }

                    count += 1;
                    if count >= self.max_readb_count {
                        break;
                    }
                }
                Some(Err(mqttbytes::Error::InsufficientBytes(_))) => unreachable!(),
                Some(Err(e)) => return Err(StateError::Deserialization(e)),
                None => return Err(StateError::ConnectionAborted),
            }
            // do not wait for subsequent reads
            match self.framed.next().now_or_never() {
                Some(r) => res = r,
                _ => break,
            };
        }

        self.give_back_room();
        Ok(())
    }

    /// ledtrad: gives back the room a large packet made the read buffer grow to, once it is
    /// empty, rather than keeping it for the rest of the connection; and all of the write
    /// buffer's once it is empty (written, flushed), until the next packets take room again.
    fn give_back_room(&mut self) {
        if self.read_grown && self.framed.read_buffer().is_empty() {
            *self.framed.read_buffer_mut() = BytesMut::with_capacity(INITIAL_CAPACITY);
            self.read_grown = false;
        }
        if self.framed.write_buffer().is_empty() {
            *self.framed.write_buffer_mut() = BytesMut::new();
        }
    }

    /// Serializes packet into write buffer
    pub async fn write(&mut self, packet: Packet) -> Result<(), StateError> {
        self.framed
            .feed(packet)
            .await
            .map_err(StateError::Deserialization)
    }

    pub async fn flush(&mut self) -> Result<(), StateError> {
        self.framed
            .flush()
            .await
            .map_err(StateError::Deserialization)?;
        self.give_back_room();
        Ok(())
    }
}

#[cfg(test)]
mod ledtrad_tests {
    use super::mqttbytes::v5::Publish;
    use super::mqttbytes::QoS;
    use super::*;

    fn publish(payload_bytes: usize) -> Packet {
        Packet::Publish(Publish::new(
            "a/b",
            QoS::AtMostOnce,
            vec![7; payload_bytes],
            None,
        ))
    }

    /// ledtrad: the read buffer starts small and gives back the room a large packet made it
    /// grow to once it is through; the write buffer holds room only while it holds packets;
    /// every byte is read.
    #[tokio::test]
    async fn buffers_start_small_and_give_back_what_a_large_packet_took() {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let mut ours = Network::new(ours, None);
        let mut theirs = Network::new(theirs, None);
        assert_eq!(ours.framed.read_buffer().capacity(), INITIAL_CAPACITY);
        assert_eq!(ours.framed.write_buffer().capacity(), 0);

        ours.write(publish(10)).await.unwrap();
        assert!(
            ours.framed.write_buffer().capacity() > 0,
            "the packet is in the buffer"
        );
        ours.flush().await.unwrap();
        // A new buffer: the old one, advanced past what it wrote, would report what it had left.
        assert_eq!(
            ours.framed.write_buffer().capacity(),
            0,
            "written, a small packet keeps no room"
        );
        ours.write(publish(6 * 1024)).await.unwrap();
        assert!(
            ours.framed.write_buffer().capacity() > KEPT_CAPACITY,
            "the packet is in the buffer"
        );
        ours.flush().await.unwrap();
        assert_eq!(ours.framed.write_buffer().capacity(), 0);

        theirs.write(publish(10)).await.unwrap();
        theirs.write(publish(6 * 1024)).await.unwrap();
        theirs.flush().await.unwrap();
        for expected in [10, 6 * 1024] {
            match ours.read().await.unwrap() {
                Packet::Publish(p) => assert_eq!(p.payload.len(), expected),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            ours.framed.read_buffer().capacity(),
            INITIAL_CAPACITY,
            "a new buffer"
        );
        assert!(!ours.read_grown);
        for expected in [10, 6 * 1024] {
            match theirs.read().await.unwrap() {
                Packet::Publish(p) => {
                    assert!(p.payload.iter().all(|b| *b == 7) && p.payload.len() == expected)
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
