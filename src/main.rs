fn main() {
    std::process::exit(conntrace::trace::main());
}
