//! Runs an OCI image layout in a container whose writable layer persists between runs.
//!
//! ```sh
//! # as root; the image's Entrypoint/Cmd, or COMMAND... instead of its Cmd
//! cargo run -p hull --features image --example image -- LAYOUT STORE NAME [COMMAND...]
//! # run it again: the container NAME finds what its last run wrote
//! cargo run -p hull --features image --example image -- --remove STORE NAME
//! ```
//!
//! LAYOUT is an OCI image layout directory (`skopeo copy docker://busybox oci:LAYOUT:latest`,
//! `umoci`, `buildah push`), with one image or one tagged `latest`. STORE is the layer store:
//! each layer is unpacked there once and shared; NAME's writable layer lives there too until
//! `--remove`. The container's output is this program's; hull's state goes to `$HULL_STATE`
//! (default /run/hull-example).

use std::error::Error;

use hull::image::{apply_image_config, ContainerRoot, ImageLayout, LayerStore};
use hull::oci_spec::runtime::Spec;
use hull::Container;

fn main() -> Result<(), Box<dyn Error>> {
    // The container's init is forked from this program: it must run from a sealed copy.
    hull::exe::ensure_sealed()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, store, name] if flag == "--remove" => {
            ContainerRoot::open(&LayerStore::open(store)?, name)?.remove()?;
            eprintln!("removed {name} and its writable layer");
            Ok(())
        }
        [layout, store, name, command @ ..] => run(layout, store, name, command),
        _ => Err("usage: image LAYOUT STORE NAME [COMMAND...] | image --remove STORE NAME".into()),
    }
}

fn run(layout: &str, store: &str, name: &str, command: &[String]) -> Result<(), Box<dyn Error>> {
    let layout = ImageLayout::open(layout)?;
    let image = match layout.image(None) {
        Ok(image) => image,
        Err(_) => layout.image(Some("latest"))?,
    };
    let store = LayerStore::open(store)?;
    // Layers already in the store are not unpacked again.
    let layers = store.unpack(&layout, &image)?;
    // The first run creates NAME's writable layer; later runs find it (mounted again if needed).
    let root = ContainerRoot::open_or_create(&store, name, &layers)?;

    let mut spec = Spec::default();
    let command = (!command.is_empty()).then_some(command);
    apply_image_config(&mut spec, image.config(), &root.rootfs(), command)?;

    let state = std::env::var("HULL_STATE").unwrap_or_else(|_| "/run/hull-example".into());
    // The spec goes to hull from memory: no config.json is written by this program.
    let mut container = Container::builder(name)
        .spec(root.spec(&spec)?)
        .root(state)
        .create()?;
    container.start()?;
    let status = container.wait()?;
    // The container (its processes, cgroup, state) goes; its root and writable layer stay.
    container.delete(false)?;
    eprintln!(
        "{name} exited with {status}; its changes are in {}",
        root.upper().display()
    );
    if status != 0 {
        std::process::exit(status);
    }
    Ok(())
}
