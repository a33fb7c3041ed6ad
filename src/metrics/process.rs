//! Process metrics read from Linux's /proc on each scrape: memory, CPU time, file descriptors
//! and start time, under the names Prometheus' own client libraries use.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What /proc says about this process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: f64,
}

fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    unsafe { libc::sysconf(name) as f64 }
}

/// Parses `/proc/self/stat` (fields after the parenthesised command name, which may hold
/// spaces) with the clock tick, page size and boot time needed to turn it into units.
fn parse_stat(stat: &str, ticks: f64, page: f64, boot_time: f64) -> Option<(f64, f64, f64, f64)> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3, so field N is at index N - 3.
    let number = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let cpu = (number(14)? + number(15)?) / ticks;
    let start = boot_time + number(22)? / ticks;
    Some((number(24)? * page, number(23)?, cpu, start))
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Reads the current sample; `None` where /proc is not there (not Linux) or unreadable.
pub fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = sysconf(libc::_SC_CLK_TCK);
    let page = sysconf(libc::_SC_PAGESIZE);
    let (resident_bytes, virtual_bytes, cpu_seconds, start_time_seconds) =
        parse_stat(&stat, ticks, page, boot_time()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    Some(Sample {
        resident_bytes,
        virtual_bytes,
        cpu_seconds,
        start_time_seconds,
        open_fds,
        max_fds: max_fds().unwrap_or(f64::NAN),
    })
}

/// Registered without a prefix, so the names are the conventional `process_*` ones.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else {
            return Ok(());
        };
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                s.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                s.virtual_bytes,
            ),
            (
                "process_start_time",
                "Start time since the Unix epoch",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Limit on open file descriptors",
                None,
                s.max_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        let cpu = ConstCounter::new(s.cpu_seconds);
        let unit = Some(Unit::Seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time",
            unit.as_ref(),
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        // pid (comm) state ppid … utime=250 stime=50 … starttime=1000 vsize=4096000 rss=300
        let mut fields = vec!["0"; 50];
        fields[14 - 3] = "250";
        fields[15 - 3] = "50";
        fields[22 - 3] = "1000";
        fields[23 - 3] = "4096000";
        fields[24 - 3] = "300";
        let stat = format!("42 (petal (worker) x) {}", fields.join(" "));
        let (rss, vsize, cpu, start) = parse_stat(&stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(rss, 300.0 * 4096.0);
        assert_eq!(vsize, 4_096_000.0);
        assert_eq!(cpu, 3.0);
        assert_eq!(start, 1_700_000_010.0);
    }

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let s = sample().expect("/proc is readable on Linux");
        assert!(s.resident_bytes > 1_000_000.0, "{s:?}");
        assert!(s.open_fds >= 3.0 && s.open_fds <= s.max_fds, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            s.start_time_seconds <= now && s.start_time_seconds > now - 3600.0,
            "{s:?}"
        );
    }
}
