module telepresence-ts/netstack

go 1.24

require (
	github.com/xjasonlyu/tun2socks/v2 v2.6.0
	golang.org/x/sys v0.33.0
	gvisor.dev/gvisor v0.0.0-20250523182742-eede7a881b20
)

require (
	github.com/google/btree v1.1.3 // indirect
	golang.org/x/net v0.40.0 // indirect
	golang.org/x/time v0.11.0 // indirect
	golang.zx2c4.com/wintun v0.0.0-20230126152724-0fa3db229ce2 // indirect
	golang.zx2c4.com/wireguard v0.0.0-20250521234502-f333402bd9cb // indirect
)
