//! The broker's floor for `benches/live_kafka.sh`: a bare rdkafka consumer,
//! with the same client settings as `auditwatch run`, that only counts a
//! topic's messages until it has seen N of them, and prints the rate.
//!
//!   cargo run --release --example kafka_count -- BOOTSTRAP TOPIC N

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, n] = &args[..] else {
        return Err("usage: kafka_count BOOTSTRAP TOPIC N".into());
    };
    let n: u64 = n.parse()?;
    let group = format!("kafka-count-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (mut seen, mut bytes) = (0u64, 0u64);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            first.get_or_insert_with(Instant::now);
            seen += 1;
            bytes += m.payload_len() as u64;
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "messages: {seen} in {secs:.2} s ({:.0} messages/s, {:.1} MB/s)",
        seen as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
