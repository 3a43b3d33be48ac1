//! The CRI test bed: hull as a Kubernetes RuntimeClass handler, driven as kubelet drives it.
//!
//! [`Cri::start`] runs a private containerd (see [`crate::containerd::spawn_with`]: its own root,
//! state, sockets and config under a test directory) with its built-in CRI plugin enabled and two
//! runtime handlers, `hull` (the runtime under test) and `runc` (the reference), each configured
//! as README's "Using hull with Kubernetes" shows ([`handler_config`]); a sandbox image of the
//! bed's own static `pause` (src/bin/pause.rs) and the busybox image, both imported (no registry
//! is reachable); CNI with the `bridge` and `host-local` plugins of Debian's
//! containernetworking-plugins on a bridge and subnet made here (no gateway address, no IP
//! masquerade, no port mappings: nothing in the host's firewall). The bed talks CRI v1 over
//! containerd's gRPC socket with the `k8s-cri` bindings.
//!
//! Cgroups are kubelet's cgroupfs form by default: pod parents `/<bed's root>/pod<uid>`, made and
//! removed by the bed as kubelet makes and removes them. `HULL_IT_SYSTEMD_CGROUP=1` selects
//! `SystemdCgroup = true` and kubelet's systemd parents (`kubepods-besteffort-pod<uid>.slice`),
//! for a host that runs systemd.
//!
//! Dropping a [`Cri`] stops and removes every pod it still has, stops containerd and its shims,
//! unmounts what is left under its directory, and removes its cgroups and its bridge.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::clients;
use crate::containerd::{self, IMAGE};
use crate::tmp::{unique, TempDir};
use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

/// The bed's sandbox image (`sandbox_image`): the static `pause` alone.
pub const PAUSE_IMAGE: &str = "docker.io/hull-test/pause:latest";

/// The runtime handlers every scenario runs with: the runtime under test, then the reference.
pub const HANDLERS: [&str; 2] = ["hull", "runc"];

/// How long one CRI call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// The namespace CRI keeps its images and containers in.
const K8S_NAMESPACE: &str = "k8s.io";

/// True when containerd (with its runc shim and ctr), runc and the CNI plugins are installed (see
/// [`clients::available`]).
pub fn available() -> bool {
    clients::available(
        &["containerd", "ctr", "containerd-shim-runc-v2", "runc", "ip"],
        "containerd runc iproute2",
    ) && {
        let missing: Vec<&str> = ["bridge", "host-local", "loopback"]
            .into_iter()
            .filter(|p| !Path::new(CNI_BIN_DIR).join(p).exists())
            .collect();
        missing.is_empty() || {
            let why = format!(
                "CNI plugins {missing:?} not in {CNI_BIN_DIR} \
                 (apt-get install containernetworking-plugins)"
            );
            assert!(
                std::env::var("HULL_REQUIRE_CLIENTS").as_deref() != Ok("1"),
                "{why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Where Debian's containernetworking-plugins installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// True when `HULL_IT_SYSTEMD_CGROUP=1`: the systemd cgroup driver, as on a systemd host.
pub fn systemd_cgroup() -> bool {
    std::env::var("HULL_IT_SYSTEMD_CGROUP").as_deref() == Ok("1")
}

/// The containerd (config version 2) tables of runtime handler `name` running `binary` through
/// containerd's runc shim: what README's "Using hull with Kubernetes" gives, and what the bed
/// runs with (plus, in `extra`, the bed's own option lines, such as its runtime state `Root`).
pub fn handler_config(name: &str, binary: &Path, systemd: bool, extra: &str) -> String {
    let table = format!("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}]");
    let options =
        format!("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.options]");
    let mut s = format!(
        "{table}\n  runtime_type = \"io.containerd.runc.v2\"\n{options}\n  BinaryName = {:?}\n",
        binary.display().to_string()
    );
    if systemd {
        s.push_str("  SystemdCgroup = true\n");
    }
    s.push_str(extra);
    s
}

/// A pod the bed ran: its sandbox id, the config it was run with (CreateContainer needs it
/// again) and its runtime handler.
#[derive(Clone, Debug)]
pub struct Pod {
    pub id: String,
    pub config: api::PodSandboxConfig,
    pub handler: String,
}

impl Pod {
    /// The pod's cgroup parent (kubelet's pod cgroup).
    pub fn cgroup_parent(&self) -> &str {
        self.config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.as_str())
            .unwrap_or_default()
    }

    /// The pod's log directory (`PodSandboxConfig.log_directory`).
    pub fn log_directory(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }
}

pub struct Cri {
    dir: TempDir,
    child: Option<Child>,
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    bridge: Bridge,
    subnet: String,
    /// The cgroupfs parent of every pod cgroup the bed makes (absent with systemd).
    cgroup_root: String,
    systemd: bool,
}

impl Cri {
    /// Starts a private containerd with its CRI plugin, a bridge for its pods, and imports the
    /// sandbox and busybox images.
    pub fn start() -> Cri {
        let dir = TempDir::new("cri");
        let pid = std::process::id();
        let n = unique();
        let bridge = format!("hcri{}x{n}", pid % 1_000_000);
        // The third octet from the bridge's name, so parallel test processes rarely share one
        // (Docker's bed takes 10.213.x.0/24).
        let octet = (pid as usize * 7 + n) % 250 + 1;
        let subnet = format!("10.214.{octet}.0/24");
        let systemd = systemd_cgroup();
        let cgroup_root = format!("/hull-it-cri-{pid}-{n}");
        let socket = dir.join("containerd.sock");
        let on_overlay = containerd::on_overlayfs(dir.path());

        let bridge = Bridge::make(bridge);
        let cni_conf = dir.join("cni-conf");
        std::fs::create_dir(&cni_conf).expect("create CNI conf dir");
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": bridge.0,
            "plugins": [{
                "type": "bridge",
                "bridge": bridge.0,
                "isGateway": false,
                "ipMasq": false,
                "hairpinMode": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "dataDir": dir.join("cni-ipam"),
                }
            }]
        });
        std::fs::write(
            cni_conf.join("10-hull-it.conflist"),
            serde_json::to_string_pretty(&conflist).expect("CNI config JSON"),
        )
        .expect("write CNI config");

        let runtime_root = dir.join("runtime-root");
        let root_line = format!("  Root = {:?}\n", runtime_root.display().to_string());
        let runc = clients::which("runc").expect("runc installed");
        let cri_config = format!(
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
             \x20 sandbox_image = {PAUSE_IMAGE:?}\n\
             \x20 netns_mounts_under_state_dir = true\n\
             \x20 stream_server_address = \"127.0.0.1\"\n\
             \x20 enable_selinux = false\n\
             \x20 restrict_oom_score_adj = {restrict_oom}\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
             \x20 bin_dir = {bin:?}\n\
             \x20 conf_dir = {conf:?}\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
             \x20 default_runtime_name = \"runc\"\n\
             \x20 snapshotter = {snap:?}\n\
             {hull}{runc}",
            restrict_oom = !has_cap_sys_resource(),
            bin = CNI_BIN_DIR,
            conf = cni_conf.display().to_string(),
            snap = if on_overlay { "native" } else { "overlayfs" },
            hull = handler_config(
                "hull",
                crate::runtime::runtime_binary(),
                systemd,
                &root_line
            ),
            runc = handler_config("runc", &runc, systemd, &root_line),
        );
        let child = containerd::spawn_with(dir.path(), "", None, Some(&cri_config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");

        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up:\n{}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Lazy: the first call connects, and the Version loop below retries until containerd
        // listens (its socket file appears a moment before that).
        let channel = {
            let socket = socket.clone();
            let _in_runtime = rt.enter();
            Endpoint::try_from("http://[::]:50051")
                .expect("endpoint")
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(socket).await?,
                        ))
                    }
                }))
        };
        let mut bed = Cri {
            dir,
            child: Some(child),
            socket,
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            bridge,
            subnet,
            cgroup_root,
            systemd,
        };
        // The CRI service answers once its plugin is up (the socket comes first).
        loop {
            let v = bed.rt.block_on(bed.runtime.version(api::VersionRequest {
                version: "v1".into(),
            }));
            if v.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI service did not come up ({v:?}):\n{}",
                bed.containerd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bed.import_images(on_overlay);
        bed
    }

    fn import_images(&mut self, on_overlay: bool) {
        let busybox = containerd::build_image(&self.dir.join("busybox-image"));
        let work = self.dir.join("pause-image");
        let rootfs = work.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("create pause rootfs");
        std::fs::copy(crate::runtime::tool_binary("pause"), rootfs.join("pause"))
            .expect("copy pause into its image");
        std::fs::set_permissions(rootfs.join("pause"), PermissionsExt::from_mode(0o755))
            .expect("chmod pause");
        let layer = work.join("layer.tar");
        let status = Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar of the pause layer failed");
        let pause = containerd::oci_archive(
            &work,
            &layer,
            PAUSE_IMAGE,
            serde_json::json!({"Entrypoint": ["/pause"]}),
        );
        for archive in [busybox, pause] {
            let mut cmd = Command::new("ctr");
            cmd.arg("--address")
                .arg(&self.socket)
                .args(["-n", K8S_NAMESPACE, "images", "import"])
                .arg(&archive);
            if on_overlay {
                cmd.env("CONTAINERD_SNAPSHOTTER", "native");
            }
            clients::run(cmd, Duration::from_secs(120)).ok();
        }
        // CRI learns of imported images from containerd's events: wait until it knows both.
        let deadline = Instant::now() + Duration::from_secs(30);
        for image in [IMAGE, PAUSE_IMAGE] {
            loop {
                let status = self.call(self.images.clone().image_status(api::ImageStatusRequest {
                    image: Some(api::ImageSpec {
                        image: image.into(),
                        ..Default::default()
                    }),
                    verbose: false,
                }));
                if status.map(|s| s.image.is_some()).unwrap_or(false) {
                    break;
                }
                assert!(Instant::now() < deadline, "CRI never listed {image}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Runs one CRI call to completion (the bed's tokio runtime drives it); panics after
    /// [`CALL_TIMEOUT`]. Callable from many threads at once.
    pub fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => panic!("a CRI call took longer than {CALL_TIMEOUT:?}"),
            }
        })
    }

    /// A client of CRI's RuntimeService (cheap: it shares the bed's connection).
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// A client of CRI's ImageService.
    pub fn images(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// containerd's log so far (CRI errors, the shims' messages).
    pub fn containerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The bridge the pods' veths are plugged into, and its subnet.
    pub fn bridge(&self) -> (&str, &str) {
        (&self.bridge.0, &self.subnet)
    }

    /// The runtime's state root the shim passes as `--root` (with CRI's namespace appended).
    pub fn runtime_root(&self) -> PathBuf {
        self.dir.join("runtime-root").join(K8S_NAMESPACE)
    }

    /// The config kubelet would send for a pod named `name`: its own uid, hostname, log
    /// directory and cgroup parent; the network and IPC namespaces shared by its containers,
    /// PID namespaces their own (kubelet's default, without `shareProcessNamespace`).
    pub fn pod_config(&self, name: &str) -> api::PodSandboxConfig {
        let uid = format!("hullit{}x{}", std::process::id(), unique());
        let cgroup_parent = if self.systemd {
            format!("kubepods-besteffort-pod{uid}.slice")
        } else {
            format!("{}/pod{uid}", self.cgroup_root)
        };
        let log_directory = self.dir.join("pods").join(format!("default_{name}_{uid}"));
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_directory.display().to_string(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox of [`Cri::pod_config`] with `handler`.
    pub fn run_pod(&self, handler: &str, name: &str) -> Pod {
        let config = self.pod_config(name);
        let id = self
            .call(self.runtime().run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {name} ({handler}): {e}"))
            .pod_sandbox_id;
        Pod {
            id,
            config,
            handler: handler.into(),
        }
    }

    /// A busybox container of `name` (attempt `attempt`) running `sh -c script`, logging to
    /// `<name>/<attempt>.log` in the pod's log directory, as kubelet names it.
    pub fn container_config(
        name: &str,
        attempt: u32,
        script: &str,
        resources: Option<api::LinuxContainerResources>,
    ) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            image: Some(api::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}/{attempt}.log"),
            linux: Some(api::LinuxContainerConfig {
                resources,
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    /// CreateContainer of `config` in `pod`: the container's id.
    pub fn create(&self, pod: &Pod, config: api::ContainerConfig) -> String {
        let name = config.metadata.as_ref().map(|m| m.name.clone());
        self.call(
            self.runtime()
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: pod.id.clone(),
                    config: Some(config),
                    sandbox_config: Some(pod.config.clone()),
                }),
        )
        .unwrap_or_else(|e| panic!("CreateContainer {name:?} ({}): {e}", pod.handler))
        .container_id
    }

    /// StartContainer.
    pub fn start_container(&self, id: &str) {
        self.call(self.runtime().start_container(api::StartContainerRequest {
            container_id: id.into(),
        }))
        .unwrap_or_else(|e| panic!("StartContainer {id}: {e}"));
    }

    /// CreateContainer and StartContainer of `sh -c script` named `name` in `pod`.
    pub fn run_container(&self, pod: &Pod, name: &str, script: &str) -> String {
        let id = self.create(pod, Self::container_config(name, 0, script, None));
        self.start_container(&id);
        id
    }

    /// ExecSync of `cmd` in container `id` with a `timeout` in seconds (0: none).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<api::ExecSyncResponse, tonic::Status> {
        self.call(self.runtime().exec_sync(api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        }))
    }

    /// ExecSync of `sh -c script`, which must exit 0: its stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let r = self
            .exec_sync(id, &["sh", "-c", script], 0)
            .unwrap_or_else(|e| panic!("ExecSync {script:?} in {id}: {e}"));
        assert_eq!(
            r.exit_code,
            0,
            "ExecSync {script:?} in {id}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).into_owned()
    }

    /// ContainerStatus of `id` (verbose: with the shim's `info`, which holds the pid).
    pub fn status(&self, id: &str) -> api::ContainerStatusResponse {
        self.call(
            self.runtime()
                .container_status(api::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: true,
                }),
        )
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
    }

    /// The state of container `id` (`api::ContainerState`).
    pub fn state(&self, id: &str) -> api::ContainerState {
        let s = self
            .status(id)
            .status
            .expect("ContainerStatus has a status");
        api::ContainerState::try_from(s.state).unwrap_or(api::ContainerState::ContainerUnknown)
    }

    /// Waits (up to a minute) for container `id` to exit: its status then.
    pub fn wait_exited(&self, id: &str) -> api::ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self
                .status(id)
                .status
                .expect("ContainerStatus has a status");
            if s.state == api::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} never exited: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The host pid of container `id`'s process (from ContainerStatus' verbose info).
    pub fn pid(&self, id: &str) -> i32 {
        let resp = self.status(id);
        let info = resp
            .info
            .get("info")
            .unwrap_or_else(|| panic!("no verbose info of {id}: {resp:?}"));
        let v: serde_json::Value = serde_json::from_str(info).expect("verbose info is JSON");
        v["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in the info of {id}: {info}")) as i32
    }

    /// The CRI log file of container `name` (attempt `attempt`) of `pod`.
    pub fn log_path(pod: &Pod, name: &str, attempt: u32) -> PathBuf {
        pod.log_directory().join(format!("{name}/{attempt}.log"))
    }

    /// PodSandboxStatus of `pod`.
    pub fn pod_status(&self, pod: &Pod) -> api::PodSandboxStatus {
        self.call(
            self.runtime()
                .pod_sandbox_status(api::PodSandboxStatusRequest {
                    pod_sandbox_id: pod.id.clone(),
                    verbose: false,
                }),
        )
        .unwrap_or_else(|e| panic!("PodSandboxStatus {}: {e}", pod.id))
        .status
        .expect("PodSandboxStatus has a status")
    }

    /// StopPodSandbox then RemovePodSandbox of `pod`, then the removal of its pod cgroup as
    /// kubelet does once the pod is gone: which fails while a container cgroup is left in it.
    pub fn remove_pod(&self, pod: &Pod) {
        self.call(self.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        }))
        .unwrap_or_else(|e| panic!("StopPodSandbox {} ({}): {e}", pod.id, pod.handler));
        self.call(
            self.runtime()
                .remove_pod_sandbox(api::RemovePodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                }),
        )
        .unwrap_or_else(|e| panic!("RemovePodSandbox {} ({}): {e}", pod.id, pod.handler));
        if self.systemd {
            // Kubelet's systemd driver stops the pod's slice unit; systemd removes its cgroups.
            let _ = Command::new("systemctl")
                .args(["stop", pod.cgroup_parent()])
                .status();
        } else {
            for dir in pod_cgroup_dirs(pod.cgroup_parent()) {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    let inside: Vec<String> = std::fs::read_dir(&dir)
                        .map(|d| {
                            d.flatten()
                                .filter(|e| e.path().is_dir())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    panic!(
                        "pod cgroup {} cannot be removed ({e}); cgroups left in it: {inside:?}",
                        dir.display()
                    );
                }
            }
        }
    }

    /// Nothing of `pods` and `containers` is left: CRI lists none of them; no runtime state,
    /// process, mount or cgroup of theirs (the test bed's leak check, over the whole bed
    /// directory: rootfs and shm mounts, network namespaces, which are mounted under the bed's
    /// state directory); no veth on the bed's bridge; nothing new in /var/run/netns.
    pub fn assert_clean(&self, pods: &[&Pod], containers: &[&str]) {
        let listed_pods = self
            .call(
                self.runtime()
                    .list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
            )
            .expect("ListPodSandbox");
        let listed_containers = self
            .call(
                self.runtime()
                    .list_containers(api::ListContainersRequest { filter: None }),
            )
            .expect("ListContainers");
        for p in pods {
            assert!(
                !listed_pods.items.iter().any(|i| i.id == p.id),
                "pod {} still listed",
                p.id
            );
        }
        for c in containers {
            assert!(
                !listed_containers.containers.iter().any(|i| i.id == *c),
                "container {c} still listed"
            );
        }
        let mut ids: Vec<&str> = pods.iter().map(|p| p.id.as_str()).collect();
        ids.extend(containers);
        crate::leaks::assert_no_leaks(&self.runtime_root(), &ids, &[self.dir.path()]);
        let netns = self.dir.join("state/io.containerd.grpc.v1.cri/netns");
        let left: Vec<String> = std::fs::read_dir(&netns)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "network namespaces left in {netns:?}: {left:?}"
        );
        let veths = self.veths();
        assert!(
            veths.is_empty(),
            "veths left on bridge {}: {veths:?}",
            self.bridge.0
        );
        for p in pods {
            let left = pod_cgroup_dirs(p.cgroup_parent());
            assert!(left.is_empty(), "pod cgroups left: {left:?}");
        }
    }

    /// The interfaces plugged into the bed's bridge (the host ends of the pods' veths).
    pub fn veths(&self) -> Vec<String> {
        std::fs::read_dir(
            Path::new("/sys/class/net")
                .join(&self.bridge.0)
                .join("brif"),
        )
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Pods first (containerd stops their containers and tears down their network through
        // CNI), then containerd, then any shim that outlived it.
        if let Ok(pods) = self.call(
            self.runtime()
                .list_pod_sandbox(api::ListPodSandboxRequest { filter: None }),
        ) {
            for p in pods.items {
                let _ = self.call(self.runtime().stop_pod_sandbox(api::StopPodSandboxRequest {
                    pod_sandbox_id: p.id.clone(),
                }));
                let _ = self.call(self.runtime().remove_pod_sandbox(
                    api::RemovePodSandboxRequest {
                        pod_sandbox_id: p.id,
                    },
                ));
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        clients::kill_processes_mentioning(&self.socket.to_string_lossy());
        clients::unmount_under(self.dir.path());
        clients::remove_cgroup_tree(&self.cgroup_root);
        if self.systemd {
            // Kubelet's QoS parents, which the pods' slices made: stopped once no pod of any bed
            // is left in them (a pod slice left is another bed's, or a leak its test reports).
            let pods = Command::new("systemctl")
                .args(["list-units", "--all", "--plain", "--no-legend"])
                .arg("kubepods-besteffort-pod*")
                .output();
            if pods.is_ok_and(|o| o.status.success() && o.stdout.trim_ascii().is_empty()) {
                let _ = Command::new("systemctl")
                    .args(["stop", "kubepods-besteffort.slice", "kubepods.slice"])
                    .status();
            }
        }
        // The bridge goes last, with the fields.
    }
}

/// Kubelet's namespaces for a pod without `hostNetwork`, `hostIPC`, `hostPID` or
/// `shareProcessNamespace`: network and IPC the pod's, PID each container's own.
fn pod_namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The directories of cgroupfs parent `parent` in every hierarchy (v1 controllers, unified).
fn pod_cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(hierarchies.flatten().map(|h| h.path().join(rel)));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// True when this process may lower an OOM score below its own. Without CAP_SYS_RESOURCE
/// (some sandboxed hosts, this project's CI among them) neither runc nor hull can give the pod
/// sandbox the -998 CRI asks for, so the bed then has containerd clamp scores to its own
/// (`restrict_oom_score_adj`, the option meant for rootless containerd).
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// The bed's bridge, deleted on drop (also when the bed fails to come up).
struct Bridge(String);

impl Bridge {
    fn make(name: String) -> Bridge {
        let bridge = Bridge(name);
        for args in [
            vec!["link", "add", "name", &bridge.0, "type", "bridge"],
            vec!["link", "set", &bridge.0, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if Path::new("/sys/class/net").join(&self.0).exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", &self.0])
                .status();
        }
    }
}

/// The CRI log's lines of `stream` (`stdout`, `stderr`) with their tags (`F` for a full line,
/// `P` for a part), as kubelet parses them: `<RFC 3339 time> <stream> <tag> <content>`.
pub fn log_lines(log: &str, stream: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let _time = parts.next()?;
            let s = parts.next()?;
            let tag = parts.next()?;
            let content = parts.next().unwrap_or_default();
            (s == stream).then(|| (tag.to_string(), content.to_string()))
        })
        .collect()
}
