fn main() {
    cni::skel::run(host_local::HostLocal)
}
