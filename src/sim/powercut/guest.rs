//! The guest's side: its end of the cloud channel.

use std::path::Path;

use super::tunnel;

/// The guest's end of the cloud channel: accepts on `listen` and carries each
/// connection over the virtio-serial port at `port`.
pub async fn guest_tunnel(listen: std::net::SocketAddr, port: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(port)?;
    let receiver = tokio::net::unix::pipe::Receiver::from_file_unchecked(file.try_clone()?)?;
    let sender = tokio::net::unix::pipe::Sender::from_file_unchecked(file)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tunnel::serve(
        tokio::io::join(receiver, sender),
        tunnel::Side::Guest(listener),
    )
    .await
}
