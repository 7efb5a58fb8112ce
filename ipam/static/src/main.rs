fn main() {
    cni::skel::run(static_ipam::Static)
}
