#!/bin/sh
# /init of the VM initiator's initramfs. Parameters come on the kernel command line:
# untorn.port (iSCSI), untorn.case (name), untorn.iqn, untorn.chap_iqn (optional).
# Prints "RESULT key=value" lines on the serial console; the host parses them.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo UNTORN-GUEST-UP
mkdir -p /tmp /run /var/lib/iscsi /run/lock/iscsi /etc/iscsi
for kv in $(cat /proc/cmdline); do
  case "$kv" in untorn.*=*) k=${kv%%=*}; k=${k#untorn.}; eval "u_$k=\${kv#*=}";; esac
done
r() { echo "RESULT $1=$2"; }
for m in $(cat /modules.order); do insmod "/modules/$m.ko" || r insmod_failed "$m"; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
portal=10.0.2.2:$u_port
# iscsid resolves its management peer's uid to a user name and demands "root".
echo "root:x:0:0:root:/:/bin/sh" > /etc/passwd
echo "root:x:0:" > /etc/group
echo "InitiatorName=iqn.2026-11.org.untorn:vm-guest" > /etc/iscsi/initiatorname.iscsi
: > /etc/iscsi/iscsid.conf
iscsid
# iscsiadm talks to iscsid over an abstract unix socket; wait (bounded) until it listens.
for i in $(seq 1 100); do grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix && break; sleep 0.05; done
r case "$u_case"

# The whole line: iqn...:vm must not match iqn...:vm-chap.
if iscsiadm -m discovery -t sendtargets -p "$portal" > /tmp/disc 2>&1 && grep -qxF "$portal,1 $u_iqn" /tmp/disc; then
  r discovery_ok 1
else
  r discovery_ok 0; cat /tmp/disc
fi
iscsiadm -m node -T "$u_iqn" -p "$portal" --login > /tmp/login 2>&1; r login_rc $?
dev=
for i in $(seq 1 100); do
  for d in /sys/block/sd*; do [ -e "$d/device" ] && dev=${d##*/}; done
  [ -n "$dev" ] && break
  sleep 0.1
done
r device "${dev:-none}"
if [ -n "$dev" ]; then
  q=/sys/block/$dev/queue
  for f in atomic_write_unit_min_bytes atomic_write_unit_max_bytes atomic_write_max_bytes \
           atomic_write_boundary_bytes max_hw_sectors_kb logical_block_size physical_block_size; do
    r "sysfs_$f" "$(cat $q/$f 2>/dev/null || echo missing)"
  done
  /atomic_probe /dev/$dev
  sg=$(ls /sys/block/$dev/device/scsi_generic 2>/dev/null | head -n1)
  if [ -n "$sg" ]; then
    # A WRITE ATOMIC(16) of untorn.sgx_num blocks (a length the LUN's limits accept) at LBA 4096.
    bs=$(cat $q/logical_block_size)
    num=${u_sgx_num:-8}
    dd if=/dev/urandom of=/tmp/pattern bs=$bs count=$num 2>/dev/null
    sg_write_x --atomic=0 --bs=$bs --in=/tmp/pattern --lba=4096 --num=$num /dev/$sg > /tmp/sgx 2>&1
    rc=$?; r sg_write_x_rc $rc; [ $rc = 0 ] || cat /tmp/sgx
    dd if=/dev/$dev of=/tmp/readback bs=$bs skip=4096 count=$num iflag=direct 2>/dev/null ||
      dd if=/dev/$dev of=/tmp/readback bs=$bs skip=4096 count=$num 2>/dev/null
    cmp -s /tmp/pattern /tmp/readback && r sg_readback_ok 1 || r sg_readback_ok 0
    if [ -n "$u_resize" ]; then
      # The host grows the LUN (untornctl lun resize) while this session is logged in; the
      # session is rescanned (iscsiadm -m session -R) until the kernel sees the new size.
      before=$(cat /sys/block/$dev/size); r resize_size_before "$before"
      echo UNTORN-RESIZE-NOW
      after=$before
      for i in $(seq 1 300); do
        iscsiadm -m session -R > /dev/null 2>&1
        after=$(cat /sys/block/$dev/size)
        [ "$after" != "$before" ] && break
        sleep 0.2
      done
      r resize_size_after "$after"
      dd if=/dev/$dev of=/tmp/readback bs=$bs skip=4096 count=$num iflag=direct 2>/dev/null
      cmp -s /tmp/pattern /tmp/readback && r resize_readback_ok 1 || r resize_readback_ok 0
      last=$((after * 512 / bs - num))
      dd if=/tmp/pattern of=/dev/$dev bs=$bs seek=$last count=$num oflag=direct 2>/dev/null
      dd if=/dev/$dev of=/tmp/readback bs=$bs skip=$last count=$num iflag=direct 2>/dev/null
      cmp -s /tmp/pattern /tmp/readback && r resize_tail_ok 1 || r resize_tail_ok 0
    fi
  fi
  if [ -n "$u_stress" ]; then /atomic_probe /dev/$dev --stress "$u_stress"; fi
  if [ -n "$u_fill" ]; then /atomic_probe /dev/$dev --fill "$u_fill"; fi
  iscsiadm -m node -T "$u_iqn" -p "$portal" --logout > /dev/null 2>&1; r logout_rc $?
fi

if [ -n "$u_chap_iqn" ]; then
  n="iscsiadm -m node -T $u_chap_iqn -p $portal -o update"
  $n -n node.session.auth.authmethod -v CHAP
  $n -n node.session.auth.username -v "$u_chap_user"
  $n -n node.session.auth.password -v wrong-secret-0000
  iscsiadm -m node -T "$u_chap_iqn" -p "$portal" --login > /dev/null 2>&1; r chap_wrong_secret_rc $?
  $n -n node.session.auth.password -v "$u_chap_secret"
  iscsiadm -m node -T "$u_chap_iqn" -p "$portal" --login > /dev/null 2>&1; r chap_login_rc $?
  iscsiadm -m node -T "$u_chap_iqn" -p "$portal" --logout > /dev/null 2>&1
fi
r done 1
echo o > /proc/sysrq-trigger 2>/dev/null
poweroff -f
