//! The standard process metrics (`process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, `process_open_fds`, ...), read from
//! `/proc/self` at each scrape.
//!
//! Written here rather than through the `prometheus` crate's `process`
//! feature: that feature pulls `procfs` and with it a second major version
//! of `rustix` into the build. What is read is four small files, and a
//! platform without `/proc` simply exports nothing.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// Clock ticks per second of `/proc/<pid>/stat` times: the kernel's
/// USER_HZ, fixed at 100 in its user ABI.
const USER_HZ: f64 = 100.0;

pub struct ProcessCollector {
    descs: Vec<Desc>,
}

const METRICS: [(&str, &str, MetricType); 6] = [
    ("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::GAUGE),
    ("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::GAUGE),
    ("process_resident_memory_max_bytes", "Peak resident memory size in bytes (VmHWM).", MetricType::GAUGE),
    ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricType::COUNTER),
    ("process_open_fds", "Number of open file descriptors.", MetricType::GAUGE),
    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", MetricType::GAUGE),
];

impl ProcessCollector {
    pub fn new() -> Result<ProcessCollector, prometheus::Error> {
        let descs = METRICS
            .iter()
            .map(|(name, help, _)| Desc::new((*name).into(), (*help).into(), Vec::new(), Default::default()))
            .collect::<Result<_, _>>()?;
        Ok(ProcessCollector { descs })
    }
}

/// Peak resident memory (VmHWM) in bytes, for exit summaries.
pub fn peak_resident_bytes() -> Option<f64> {
    status_bytes(&std::fs::read_to_string("/proc/self/status").ok()?, "VmHWM:")
}

/// A `kB` figure of /proc/self/status, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<f64> {
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix(key))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024.0)
}

/// (CPU seconds, start time in seconds since boot) from /proc/self/stat.
fn stat_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime is field 14, stime 15, starttime 22.
    let tick = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).map(|t| t / USER_HZ);
    Some((tick(14)? + tick(15)?, tick(22)?))
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let times = stat_times();
        let values = [
            status_bytes(&status, "VmRSS:"),
            status_bytes(&status, "VmSize:"),
            status_bytes(&status, "VmHWM:"),
            times.map(|t| t.0),
            std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64),
            times.and_then(|t| Some(boot_time()? + t.1)),
        ];
        METRICS
            .iter()
            .zip(values)
            .filter_map(|((name, help, kind), value)| {
                let value = value?;
                let mut metric = proto::Metric::default();
                if *kind == MetricType::COUNTER {
                    let mut c = proto::Counter::default();
                    c.set_value(value);
                    metric.set_counter(c);
                } else {
                    let mut g = proto::Gauge::default();
                    g.set_value(value);
                    metric.set_gauge(g);
                }
                let mut family = MetricFamily::default();
                family.set_name((*name).into());
                family.set_help((*help).into());
                family.set_field_type(*kind);
                family.set_metric(vec![metric]);
                Some(family)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let families = ProcessCollector::new().unwrap().collect();
        let value = |name: &str| {
            let f = families.iter().find(|f| f.name() == name).unwrap();
            let m = &f.get_metric()[0];
            if f.get_field_type() == MetricType::COUNTER {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_resident_memory_max_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(started <= now + 1.0 && started > now - 86_400.0, "{started} vs {now}");
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
