# checks.nixos-test: a NixOS VM boots with zeta-creds-restore.service, for
# machines that have nixpkgs (`nix build .#checks.x86_64-linux.nixos-test`).
# Written, not run on our build machines: there, tests/vm/run.sh boots the
# same unit (rendered by nixos-modules/unit.nix) in a Debian guest under a
# real systemd, including the interactive console prompt.
#
# What it proves, one boot each (two VMs: credential and file mode):
#   1. no blob: the unit is skipped by its condition, the boot reaches
#      multi-user.target;
#   2. credential mode (a `systemd-creds encrypt` file, host key): the
#      blob's files land with the VM user's uid (1500, not the builder's
#      1000), exact modes, the unit is active (exited), and the passphrase
#      is in no journal line;
#   3. a second boot with the same blob (restoreOn = "new-blob"): the
#      check unit says "already restored", the restore unit is skipped by
#      its condition, so the sealed passphrase is not even decrypted;
#   4. file mode with a wrong passphrase: exit 3, the passphrase file is
#      gone from /run, the restored files are untouched.
#
# The test passphrase is in the Nix store on purpose (a fixture, not a
# secret).
{
  pkgs,
  nixosModule,
  zeta-creds,
}:
let
  fixture =
    pkgs.runCommand "zeta-creds-nixos-test-fixture"
      {
        nativeBuildInputs = [ zeta-creds ];
      }
      ''
        # The build user is uid 1000 in the sandbox: that is "zeta" in the
        # source tree; the VM's zeta is 1500.
        mkdir -p src/etc/zeta src/home/zeta/.config/gh "$out"
        printf 'root:x:0:0::/root:/bin/sh\nzeta:x:%s:%s::/home/zeta:/bin/sh\n' "$(id -u)" "$(id -g)" > src/etc/passwd
        printf 'root:x:0:\nzeta:x:%s:\n' "$(id -g)" > src/etc/group
        printf 'github.com:\n  oauth_token: gho_test\n' > src/home/zeta/.config/gh/hosts.yml
        chmod 0600 src/home/zeta/.config/gh/hosts.yml
        printf 'ssh-ed25519 AAAA operator\n' > src/etc/zeta/operator-authorized-keys
        chmod 0644 src/etc/zeta/operator-authorized-keys
        cat > manifest.toml <<'EOF'
        version = 1
        user = "zeta"
        [[entry]]
        path = "~/.config/gh"
        [[entry]]
        path = "/etc/zeta/operator-authorized-keys"
        owner = "root"
        group = "root"
        EOF
        printf 'nixos test passphrase, not a secret\n' > "$out/passphrase"
        printf 'wrong passphrase\n' > "$out/wrong-passphrase"
        cp "$out/passphrase" pass
        zeta-creds bundle --manifest manifest.toml --out "$out/zeta-creds.enc" \
          --usb-uuid DEAD-BEEF --host zeta-test --source-root src --passphrase-file pass \
          --work-factor 10 --allow-weak-passphrase
        printf 'DEAD-BEEF\n' > "$out/usb-uuid"
      '';
in
pkgs.testers.runNixOSTest {
  name = "zeta-creds-restore";
  globalTimeout = 900;

  # One VM per passphrase mode; the blob is put in place on a first boot.
  nodes =
    let
      common = {
        imports = [ nixosModule ];
        users.users.zeta = {
          isNormalUser = true;
          uid = 1500;
          group = "zeta";
        };
        users.groups.zeta.gid = 1500;
        zeta.credsRestore.enable = true;
        # One blob serves both nodes, so both are the host it is sealed
        # for (the restore refuses another host's blob).
        networking.hostName = "zeta-test";
      };
    in
    {
      credential = {
        imports = [ common ];
        zeta.credsRestore.passphrase = {
          mode = "credential";
          credential = "/etc/credstore.encrypted/zeta-creds.passphrase";
        };
      };
      filemode = {
        imports = [ common ];
        zeta.credsRestore.passphrase = {
          mode = "file";
          file = "/run/zeta-creds/passphrase";
        };
        # Stands in for whatever stages the file before boot.
        systemd.services.stage-passphrase = {
          wantedBy = [ "zeta-creds-restore.service" ];
          before = [ "zeta-creds-restore.service" ];
          serviceConfig.Type = "oneshot";
          script = "install -D -m 0600 ${fixture}/wrong-passphrase /run/zeta-creds/passphrase";
        };
      };
    };

  testScript = ''
    # The module's default blob path: the ESP as NixOS mounts it
    # (boot.loader.efi.efiSysMountPoint, /boot).
    def put_blob(m):
        m.succeed(
            "install -D -m 0644 ${fixture}/zeta-creds.enc /boot/zeta-creds.enc",
            "install -D -m 0644 ${fixture}/usb-uuid /etc/zeta/usb-uuid",
        )

    with subtest("no blob: skipped by its condition, the boot goes on"):
        credential.start()
        credential.wait_for_unit("multi-user.target")
        credential.succeed("systemctl show -p ConditionResult zeta-creds-restore.service | grep -x ConditionResult=no")
        # Everything the docs name is installed.
        credential.succeed("zeta-creds --version", "command -v zeta-creds-step", "man -w zeta-creds-restore")
        put_blob(credential)
        credential.succeed(
            "mkdir -p -m 0700 /etc/credstore.encrypted",
            "systemd-creds encrypt --with-key=host --name=passphrase ${fixture}/passphrase /etc/credstore.encrypted/zeta-creds.passphrase",
        )
        credential.shutdown()

    with subtest("credential mode: restored with the VM's owners and exact modes"):
        credential.start()
        credential.wait_for_unit("zeta-creds-restore.service")
        credential.succeed("systemctl show -p ExecMainStatus zeta-creds-restore.service | grep -x ExecMainStatus=0")
        credential.succeed("test \"$(stat -c '%u:%g %a' /home/zeta/.config/gh/hosts.yml)\" = '1500:1500 600'")
        credential.succeed("test \"$(stat -c '%u:%g' /home/zeta/.config)\" = '1500:1500'")
        credential.succeed("test \"$(stat -c '%u:%g %a' /etc/zeta/operator-authorized-keys)\" = '0:0 644'")
        credential.fail("journalctl -b -o verbose | grep -F -f ${fixture}/passphrase")
        credential.shutdown()

    with subtest("second boot, same blob: already restored, the restore unit skipped"):
        credential.start()
        credential.wait_for_unit("multi-user.target")
        credential.succeed("journalctl -b -u zeta-creds-restore-check.service | grep -F 'already restored: generation 1, sealed '")
        credential.succeed("systemctl show -p ConditionResult zeta-creds-restore.service | grep -x ConditionResult=no")
        credential.succeed("systemctl show -p ExecMainStartTimestampMonotonic zeta-creds-restore.service | grep -x ExecMainStartTimestampMonotonic=0")
        credential.shutdown()

    with subtest("file mode, wrong passphrase: exit 3, no file left in /run, nothing written"):
        filemode.start()
        filemode.wait_for_unit("multi-user.target")
        put_blob(filemode)
        filemode.shutdown()
        filemode.start()
        filemode.wait_for_unit("multi-user.target")
        filemode.wait_until_succeeds("systemctl show -p ExecMainStatus zeta-creds-restore.service | grep -x ExecMainStatus=3")
        filemode.succeed("test ! -e /run/zeta-creds/passphrase")
        filemode.succeed("test ! -e /home/zeta/.config/gh")
        filemode.fail("journalctl -b -o verbose | grep -F -f ${fixture}/wrong-passphrase")
  '';
}
