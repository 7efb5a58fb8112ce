fn main() {
    cni::skel::run(firewall::Firewall)
}
