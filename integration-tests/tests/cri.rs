//! Kubernetes' view of the runtime: hull as a RuntimeClass handler under containerd's CRI plugin,
//! driven by the calls kubelet makes (see `integration_tests::cri`). Every scenario runs with
//! handler `hull` and with handler `runc`, the reference: a scenario that fails with runc is a
//! bug of the test. Each test starts its own containerd and leaves nothing behind.

use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::cgroupfs;
use integration_tests::cri::{api, available, log_lines, Cri, Pod, HANDLERS};
use integration_tests::runtime::is_hull;

const MIB: i64 = 1024 * 1024;

/// Runs `scenario` once per handler (hull, then runc) on one fresh bed.
fn each_handler(scenario: impl Fn(&Cri, &str)) {
    if !available() {
        return;
    }
    let bed = Cri::start();
    for handler in HANDLERS {
        scenario(&bed, handler);
    }
}

/// The handler's runtime made container `id`: its state is in the shim's runtime root, and for
/// handler `hull` it is hull's (hull's state.json has fields runc's lacks).
fn assert_ran_by(bed: &Cri, handler: &str, id: &str) {
    let path = bed.runtime_root().join(id).join("state.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no runtime state at {}: {e}", path.display()));
    let hulls = text.contains("\"init_start_time\"");
    if handler == "hull" && is_hull() {
        assert!(hulls, "handler hull, but not hull's state: {text}");
    } else if handler == "runc" {
        assert!(!hulls, "handler runc, but hull's state: {text}");
    }
}

/// Waits (up to a minute) until the file at `path` contains `needle`: its content then.
fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {needle:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pod_ip(bed: &Cri, pod: &Pod) -> String {
    let s = bed.pod_status(pod);
    s.network
        .map(|n| n.ip)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("no pod IP in PodSandboxStatus of {}", pod.id))
}

#[test]
fn version_and_the_pod_sandbox_lifecycle() {
    each_handler(|bed, handler| {
        let v = bed
            .call(bed.runtime().version(api::VersionRequest {
                version: "v1".into(),
            }))
            .expect("Version");
        assert_eq!(v.runtime_name, "containerd");
        assert_eq!(v.runtime_api_version, "v1");

        let pod = bed.run_pod(handler, &format!("lifecycle-{handler}"));
        assert_ran_by(bed, handler, &pod.id);
        let status = bed.pod_status(&pod);
        assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
        assert_eq!(status.runtime_handler, handler);
        // The IP CNI's host-local gave, from the bed's subnet.
        let ip = pod_ip(bed, &pod);
        let (bridge, subnet) = bed.bridge();
        let prefix = subnet.trim_end_matches("0/24");
        assert!(ip.starts_with(prefix), "pod IP {ip} not in {subnet}");
        assert_eq!(bed.veths().len(), 1, "one veth on {bridge}");

        bed.call(bed.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        }))
        .expect("StopPodSandbox");
        let status = bed.pod_status(&pod);
        assert_eq!(status.state, api::PodSandboxState::SandboxNotready as i32);
        assert!(bed.veths().is_empty(), "StopPodSandbox left the pod's veth");
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[]);
    });
}

#[test]
fn two_containers_share_the_pods_network_ipc_and_uts() {
    each_handler(|bed, handler| {
        let name = format!("shared-{handler}");
        let pod = bed.run_pod(handler, &name);
        let ip = pod_ip(bed, &pod);
        let a = bed.run_container(&pod, "a", "exec sleep 1000");
        let b = bed.run_container(&pod, "b", "exec sleep 1000");
        assert_ran_by(bed, handler, &a);
        assert_ran_by(bed, handler, &b);
        for c in [&a, &b] {
            let addrs = bed.sh(c, "ip -4 -o addr show eth0");
            assert!(
                addrs.contains(&format!("inet {ip}/")),
                "container {c} lacks the pod IP {ip}: {addrs}"
            );
            assert_eq!(bed.sh(c, "hostname"), format!("{name}\n"));
        }
        // The same namespaces, not merely the same values; the PID namespace is each its own.
        let ns = |c: &str| {
            bed.sh(
                c,
                "for n in net ipc uts; do readlink /proc/self/ns/$n; done",
            )
        };
        assert_eq!(ns(&a), ns(&b));
        let pidns = |c: &str| bed.sh(c, "readlink /proc/self/ns/pid");
        assert_ne!(pidns(&a), pidns(&b));
        // A shared-memory segment made in one is seen in the other (the pod's /dev/shm).
        bed.sh(&a, &format!("echo segment-of-{handler} > /dev/shm/seg"));
        assert_eq!(
            bed.sh(&b, "cat /dev/shm/seg"),
            format!("segment-of-{handler}\n")
        );
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&a, &b]);
    });
}

#[test]
fn exec_sync_output_exit_codes_and_timeout() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("exec-{handler}"));
        let c = bed.run_container(&pod, "main", "exec sleep 1000");
        let r = bed
            .exec_sync(&c, &["sh", "-c", "echo out; echo err >&2; exit 3"], 0)
            .expect("ExecSync");
        assert_eq!(String::from_utf8_lossy(&r.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");
        assert_eq!(r.exit_code, 3);
        let r = bed.exec_sync(&c, &["false"], 0).expect("ExecSync false");
        assert_eq!(r.exit_code, 1);
        // A probe whose binary is missing fails the call (kubelet: probe error), as with runc,
        // and the runtime's reason reaches the caller.
        let err = bed
            .exec_sync(&c, &["/no/such/probe"], 0)
            .expect_err("ExecSync of a missing binary");
        assert!(
            err.message().contains("/no/such/probe")
                && err.message().contains("no such file or directory"),
            "{err:?}"
        );
        let r = bed.exec_sync(&c, &["true"], 60).expect("ExecSync true");
        assert_eq!(r.exit_code, 0);
        // A probe that outlives its timeout: the call fails and the process is killed.
        let err = bed
            .exec_sync(&c, &["sleep", "31"], 1)
            .expect_err("ExecSync past its timeout");
        assert!(err.message().contains("timeout"), "{err:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while bed.sh(&c, "ps -o args").contains("sleep 31") {
            assert!(Instant::now() < deadline, "the timed-out exec lives on");
            std::thread::sleep(Duration::from_millis(50));
        }
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&c]);
    });
}

#[test]
fn container_status_exit_codes_and_oom_killed() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("oom-{handler}"));
        let failing = bed.run_container(&pod, "failing", "exit 7");
        let s = bed.wait_exited(&failing);
        assert_eq!(s.exit_code, 7);
        assert_eq!(s.reason, "Error");

        let limits = api::LinuxContainerResources {
            memory_limit_in_bytes: 32 * MIB,
            ..Default::default()
        };
        // dd's buffer is 64 MiB, twice the limit: the kernel's OOM killer ends it. The shim
        // watches for OOM events only from some moment after StartContainer (on v2 from when
        // its inotify watch of memory.events is in place), and an OOM before that is missed,
        // with runc as with hull: so children are OOM-killed over and over until containerd has
        // seen one, and only then does the container's own process hit the limit.
        let hog = bed.create(
            &pod,
            Cri::container_config(
                "hog",
                0,
                "until [ -e /tmp/stop ]; do \
                   dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 0.2; \
                 done; \
                 exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                Some(limits),
            ),
        );
        bed.start_container(&hog);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = bed
                .status(&hog)
                .status
                .expect("ContainerStatus has a status");
            if s.reason == "OOMKilled" {
                break;
            }
            assert!(Instant::now() < deadline, "no OOM event reached CRI: {s:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The exec'd process joins the hog's 32 MiB cgroup while dd is OOM-killed there over
        // and over: the kernel may pick it (or the runtime's exec helper) instead, which is the
        // limit working, not the runtime failing. Another try then reaches the container.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match bed.exec_sync(&hog, &["sh", "-c", "touch /tmp/stop"], 0) {
                Ok(r) if r.exit_code == 0 => break,
                other if attempt >= 5 => panic!("ExecSync touch /tmp/stop, 5 tries: {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(300)),
            }
        }
        let s = bed.wait_exited(&hog);
        assert_eq!(s.reason, "OOMKilled", "{s:?}");
        assert_eq!(s.exit_code, 137, "{s:?}");
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&failing, &hog]);
    });
}

#[test]
fn container_stats_and_update_container_resources() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("resources-{handler}"));
        let resources = api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 256,
            memory_limit_in_bytes: 64 * MIB,
            ..Default::default()
        };
        let c = bed.create(
            &pod,
            Cri::container_config("main", 0, "exec sleep 1000", Some(resources)),
        );
        bed.start_container(&c);
        let pid = bed.pid(&c);
        let check = |quota: i64, shares: i64, memory: i64| {
            let memory_file =
                cgroupfs::knob(pid, ("memory", "memory.limit_in_bytes"), "memory.max");
            assert_eq!(cgroupfs::value(&memory_file), memory.to_string());
            if cgroupfs::is_v2() {
                let cpu_max = cgroupfs::knob(pid, ("cpu", ""), "cpu.max");
                assert_eq!(cgroupfs::value(&cpu_max), format!("{quota} 100000"));
                // runc's conversion of shares to a weight.
                let weight = 1 + ((shares - 2) * 9999) / 262_142;
                let w = cgroupfs::knob(pid, ("cpu", ""), "cpu.weight");
                assert_eq!(cgroupfs::value(&w), weight.to_string());
            } else {
                let dir = cgroupfs::dir(pid, "cpu");
                assert_eq!(cgroupfs::read(&dir, "cpu.cfs_quota_us"), quota.to_string());
                assert_eq!(cgroupfs::read(&dir, "cpu.cfs_period_us"), "100000");
                assert_eq!(cgroupfs::read(&dir, "cpu.shares"), shares.to_string());
            }
        };
        check(20_000, 256, 64 * MIB);

        // Some work in the container (an exec runs in its cgroup), then its stats.
        bed.sh(
            &c,
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=8 2>/dev/null",
        );
        let stats = bed
            .call(bed.runtime().container_stats(api::ContainerStatsRequest {
                container_id: c.clone(),
            }))
            .expect("ContainerStats")
            .stats
            .expect("stats");
        assert_eq!(
            stats.attributes.as_ref().map(|a| a.id.as_str()),
            Some(c.as_str())
        );
        let cpu = stats
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value);
        assert!(cpu.unwrap_or(0) > 0, "no CPU usage: {cpu:?}");
        let memory = stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value);
        assert!(memory.unwrap_or(0) > 0, "no memory working set: {memory:?}");
        let listed = bed
            .call(
                bed.runtime()
                    .list_container_stats(api::ListContainerStatsRequest {
                        filter: Some(api::ContainerStatsFilter {
                            id: c.clone(),
                            ..Default::default()
                        }),
                    }),
            )
            .expect("ListContainerStats");
        assert_eq!(listed.stats.len(), 1);

        bed.call(
            bed.runtime()
                .update_container_resources(api::UpdateContainerResourcesRequest {
                    container_id: c.clone(),
                    linux: Some(api::LinuxContainerResources {
                        cpu_period: 100_000,
                        cpu_quota: 50_000,
                        cpu_shares: 512,
                        memory_limit_in_bytes: 128 * MIB,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
        )
        .unwrap_or_else(|e| panic!("UpdateContainerResources ({handler}): {e}"));
        check(50_000, 512, 128 * MIB);
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&c]);
    });
}

#[test]
fn container_log_and_reopen_container_log() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("log-{handler}"));
        let c = bed.run_container(
            &pod,
            "main",
            "echo first line; echo to-stderr >&2; exec sleep 1000",
        );
        let log = Cri::log_path(&pod, "main", 0);
        wait_for_file(&log, "first line");
        let text = wait_for_file(&log, "to-stderr");
        assert_eq!(
            log_lines(&text, "stdout"),
            vec![("F".to_string(), "first line".to_string())],
            "{text}"
        );
        assert_eq!(
            log_lines(&text, "stderr"),
            vec![("F".to_string(), "to-stderr".to_string())],
            "{text}"
        );
        // Kubelet's rotation: rename, then have the runtime reopen the path.
        let rotated = log.with_extension("log.1");
        std::fs::rename(&log, &rotated).expect("rotate the log");
        bed.call(
            bed.runtime()
                .reopen_container_log(api::ReopenContainerLogRequest {
                    container_id: c.clone(),
                }),
        )
        .unwrap_or_else(|e| panic!("ReopenContainerLog ({handler}): {e}"));
        bed.sh(&c, "echo after reopen > /proc/1/fd/1");
        let text = wait_for_file(&log, "after reopen");
        assert_eq!(
            log_lines(&text, "stdout"),
            vec![("F".to_string(), "after reopen".to_string())]
        );
        let old = std::fs::read_to_string(&rotated).expect("read the rotated log");
        assert!(!old.contains("after reopen"), "{old}");
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&c]);
    });
}

#[test]
fn stop_container_sigterm_then_sigkill_after_the_grace_period() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("stop-{handler}"));
        // Traps SIGTERM and goes on: only SIGKILL, after the grace period, ends it.
        let stubborn = bed.run_container(
            &pod,
            "stubborn",
            "trap 'echo got TERM' TERM; echo ready; while :; do sleep 1000 & wait; done",
        );
        // Exits on SIGTERM with a code of its own.
        let polite = bed.run_container(
            &pod,
            "polite",
            "trap 'echo bye; exit 42' TERM; echo ready; while :; do sleep 1000 & wait; done",
        );
        for name in ["stubborn", "polite"] {
            wait_for_file(&Cri::log_path(&pod, name, 0), "ready");
        }
        let stop = |id: &str, timeout: i64| {
            bed.call(bed.runtime().stop_container(api::StopContainerRequest {
                container_id: id.into(),
                timeout,
            }))
            .unwrap_or_else(|e| panic!("StopContainer ({handler}): {e}"));
        };
        stop(&stubborn, 5);
        let s = bed.wait_exited(&stubborn);
        assert_eq!(s.exit_code, 137, "not SIGKILLed: {s:?}");
        wait_for_file(&Cri::log_path(&pod, "stubborn", 0), "got TERM");
        stop(&polite, 60);
        let s = bed.wait_exited(&polite);
        assert_eq!(s.exit_code, 42, "SIGTERM not delivered: {s:?}");
        wait_for_file(&Cri::log_path(&pod, "polite", 0), "bye");
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&stubborn, &polite]);
    });
}

#[test]
fn an_exited_container_is_created_and_started_again_in_its_sandbox() {
    each_handler(|bed, handler| {
        let pod = bed.run_pod(handler, &format!("restart-{handler}"));
        let ip = pod_ip(bed, &pod);
        let first = bed.create(
            &pod,
            Cri::container_config("app", 0, "echo run 0; exit 7", None),
        );
        bed.start_container(&first);
        assert_eq!(bed.wait_exited(&first).exit_code, 7);
        // Kubelet's restart: the next attempt of the same container, in the same sandbox.
        let second = bed.create(
            &pod,
            Cri::container_config("app", 1, "echo run 1; exec sleep 1000", None),
        );
        bed.start_container(&second);
        assert_eq!(bed.state(&second), api::ContainerState::ContainerRunning);
        assert_ran_by(bed, handler, &second);
        let addrs = bed.sh(&second, "ip -4 -o addr show eth0");
        assert!(addrs.contains(&format!("inet {ip}/")), "{addrs}");
        wait_for_file(&Cri::log_path(&pod, "app", 0), "run 0");
        wait_for_file(&Cri::log_path(&pod, "app", 1), "run 1");
        // Kubelet's garbage collection of the dead attempt.
        bed.call(bed.runtime().remove_container(api::RemoveContainerRequest {
            container_id: first.clone(),
        }))
        .expect("RemoveContainer");
        assert!(bed
            .call(bed.runtime().container_status(api::ContainerStatusRequest {
                container_id: first.clone(),
                verbose: false,
            }))
            .is_err());
        bed.remove_pod(&pod);
        bed.assert_clean(&[&pod], &[&first, &second]);
    });
}

#[test]
fn ten_pods_in_parallel_leave_nothing_behind() {
    each_handler(|bed, handler| {
        let made: Vec<(Pod, String)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..10)
                .map(|i| {
                    s.spawn(move || {
                        let pod = bed.run_pod(handler, &format!("many-{handler}-{i}"));
                        let c = bed.run_container(&pod, "main", "exec sleep 1000");
                        assert_eq!(bed.sh(&c, &format!("echo pod {i}")), format!("pod {i}\n"));
                        bed.remove_pod(&pod);
                        (pod, c)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a pod's thread"))
                .collect()
        });
        let pods: Vec<&Pod> = made.iter().map(|(p, _)| p).collect();
        let containers: Vec<&str> = made.iter().map(|(_, c)| c.as_str()).collect();
        bed.assert_clean(&pods, &containers);
    });
}
