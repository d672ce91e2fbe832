# The unit of nixos-modules/unit.nix over a matrix of configurations, with
# the exact ExecStart argv, ordering, conditions, credentials, timeouts and
# sandbox each one must produce, and every assertion message firing.
#
# Expectations are written out literally, not computed with the code under
# test. Plain Nix, builtins only:
#
#   nix-instantiate --eval --strict --json tests/nix/unit-cases.nix
#   => { "count": N, "failures": [ "case: what differed", … ] }
#
# tests/nix/run.sh runs it; the flake's checks.unit-cases does too.
let
  inherit (builtins)
    all
    concatLists
    filter
    isString
    length
    map
    toJSON
    ;
  u = import ../../nixos-modules/unit.nix;

  bin = "/nix/store/00000000000000000000000000000000-zeta-creds-0.1.0/bin/zeta-creds";
  mk = cfg: u.mkUnit { inherit cfg; binary = bin; };
  mkHome = cfg: userHome: u.mkUnit { inherit cfg userHome; binary = bin; };

  # One check: null when it holds, else what went wrong.
  eq =
    what: got: want:
    if got == want then null else "${what}: expected ${toJSON want}, got ${toJSON got}";
  absent =
    what: attrs: key:
    if attrs ? ${key} then "${what}: ${key} should not be set, is ${toJSON attrs.${key}}" else null;
  holds = what: ok: if ok then null else what;

  head = [
    bin
    "restore"
  ];

  # What every configuration shares: ordering, install, the oneshot, the
  # restart policy, and the sandbox.
  common =
    x:
    let
      s = x.service;
    in
    [
      (eq "After" x.unit.After (
        [
          "local-fs.target"
          "systemd-sysusers.service"
          "userborn.service"
        ]
        ++ (if x.check == null then [ ] else [ "zeta-creds-restore-check.service" ])
      ))
      (eq "Wants: the check, with restoreOn = \"new-blob\"" (x.unit.Wants or [ ]) (
        if x.check == null then [ ] else [ "zeta-creds-restore-check.service" ]
      ))
      (eq "nixos.wants" x.nixos.wants (x.unit.Wants or [ ]))
      (eq "ConditionPathExists: skipped when the check left its marker" (
        builtins.elem "!/run/zeta-creds-already-restored" x.unit.ConditionPathExists
      ) (x.check != null))
      (eq "Before" x.unit.Before [
        "sshd-keygen.service"
        "sshd.service"
        "systemd-user-sessions.service"
        "sops-install-secrets.service"
        "agenix-install-secrets.service"
      ])
      (eq "start limits, as NixOS's own options" {
        inherit (x.nixos) startLimitBurst startLimitIntervalSec;
      } {
        startLimitBurst = 3;
        startLimitIntervalSec = 600;
      })
      (holds "no StartLimit* in unitConfig (NixOS writes them there from its options)" (
        !(x.nixos.unitConfig ? StartLimitBurst) && !(x.nixos.unitConfig ? StartLimitIntervalSec)
      ))
      (eq "WantedBy" x.install.WantedBy [ "multi-user.target" ])
      (eq "Type" s.Type "oneshot")
      (eq "RemainAfterExit: only outside credential mode (systemd releases the unsealed credential when the unit stops)"
        s.RemainAfterExit (!(s ? LoadCredentialEncrypted)))
      (eq "Restart" s.Restart "on-failure")
      (eq "RestartPreventExitStatus" s.RestartPreventExitStatus "2 3 4 5 6 7 8 243")
      (eq "LimitMEMLOCK" s.LimitMEMLOCK "infinity")
      (eq "LimitCORE" s.LimitCORE 0)
      (eq "ProtectSystem" s.ProtectSystem "strict")
      (eq "StateDirectory" s.StateDirectory "zeta-creds sops-nix")
      (eq "StateDirectoryMode" s.StateDirectoryMode "0700")
      (eq "PrivateTmp" s.PrivateTmp true)
      (eq "PrivateNetwork" s.PrivateNetwork true)
      (eq "PrivateDevices" s.PrivateDevices true)
      (eq "NoNewPrivileges" s.NoNewPrivileges true)
      (eq "RestrictAddressFamilies" s.RestrictAddressFamilies "AF_UNIX")
      (eq "SystemCallFilter" s.SystemCallFilter "@system-service")
      (eq "CapabilityBoundingSet" s.CapabilityBoundingSet "CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_IPC_LOCK")
      (eq "UMask" s.UMask "0077")
      # ExecStopPost= does not run while a oneshot remains active: no
      # cleanup may hang on it. Credential mode's is the failure report;
      # file mode's removes a staged passphrase a refused run never read.
      (eq "ExecStopPost only in credential and file mode" (s ? ExecStopPost) (
        (s ? LoadCredentialEncrypted) || builtins.match ".*--passphrase-file.*" s.ExecStart != null
      ))
      (eq "DeviceAllow only in credential mode" (s ? DeviceAllow) (s ? LoadCredentialEncrypted))
      (eq "units (sorted by name)" (builtins.attrNames x.units) (
        (
          if x.rebundle == null then
            [ ]
          else
            (if x.rebundle.shutdown == null then [ ] else [ "zeta-creds-rebundle-shutdown.service" ])
            ++ [
              "zeta-creds-rebundle.service"
              "zeta-creds-rebundle.timer"
            ]
        )
        ++ (if x.check == null then [ ] else [ "zeta-creds-restore-check.service" ])
        ++ (if x.fallback == null then [ ] else [ "zeta-creds-restore-fallback.service" ])
        ++ [ "zeta-creds-restore.service" ]
      ))
      (eq "units: the restore's text" x.units."zeta-creds-restore.service" x.text)
      (eq "nixosServices: the restore" x.nixosServices.zeta-creds-restore x.nixos)
      (eq "OnFailure only with a fallback" (x.unit ? OnFailure) (x.fallback != null))
      (holds "no shell in ExecStart" (builtins.match ".*(/bin/sh|bash| -c ).*" s.ExecStart == null))
      (eq "nixos.restartIfChanged" x.nixos.restartIfChanged false)
      (eq "nixos.after" x.nixos.after x.unit.After)
      (eq "nixos.before" x.nixos.before x.unit.Before)
      (eq "nixos.wantedBy" x.nixos.wantedBy [ "multi-user.target" ])
      (eq "nixos.serviceConfig" x.nixos.serviceConfig s)
      (eq "nixos.unitConfig.ConditionPathExists" x.nixos.unitConfig.ConditionPathExists x.unit.ConditionPathExists)
      (eq "rendered text, second line" (builtins.elemAt (filter isString (builtins.split "\n" x.text)) 1) "[Unit]")
    ];

  cases = [
    {
      name = "defaults (interactive)";
      checks =
        let
          x = mk { };
        in
        common x
        ++ [
          (eq "argv" x.argv (
            head
            ++ [
              "--blob"
              "/boot/zeta-creds.enc"
              "--usb-uuid-file"
              "/etc/zeta/usb-uuid"
              "--on-conflict"
              "keep-modified"
              "--max-work-factor"
              "20"
              "--ask-password"
              "--ask-password-timeout"
              "300"
            ]
          ))
          (eq "ExecStart" x.service.ExecStart "${bin} restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --on-conflict keep-modified --max-work-factor 20 --ask-password --ask-password-timeout 300")
          (eq "ConditionPathExists" x.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
            "!/run/zeta-creds-already-restored"
          ])
          (eq "RequiresMountsFor" x.unit.RequiresMountsFor [
            "/boot"
            "/etc/zeta"
          ])
          # 3 tries x 300 s + 120 s for scrypt and the writes
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "1020")
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "-/run/systemd/ask-password"
          ])
          (absent "credential" x.service "LoadCredentialEncrypted")
          (absent "usb bind" x.service "BindReadOnlyPaths")
        ];
    }
    {
      name = "file mode";
      checks =
        let
          x = mk {
            passphrase = {
              mode = "file";
              file = "/run/zeta-creds/passphrase";
            };
          };
        in
        common x
        ++ [
          (eq "argv" x.argv (
            head
            ++ [
              "--blob"
              "/boot/zeta-creds.enc"
              "--usb-uuid-file"
              "/etc/zeta/usb-uuid"
              "--on-conflict"
              "keep-modified"
              "--max-work-factor"
              "20"
              "--passphrase-file"
              "/run/zeta-creds/passphrase"
            ]
          ))
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "120")
          # the consumed file's directory is writable, the agent's is not
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "-/run/zeta-creds"
          ])
          (absent "credential" x.service "LoadCredentialEncrypted")
        ];
    }
    {
      name = "credential mode";
      checks =
        let
          x = mk {
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds.passphrase";
            };
          };
        in
        common x
        ++ [
          # nothing on the command line: $CREDENTIALS_DIRECTORY/passphrase
          (eq "argv" x.argv (
            head
            ++ [
              "--blob"
              "/boot/zeta-creds.enc"
              "--usb-uuid-file"
              "/etc/zeta/usb-uuid"
              "--on-conflict"
              "keep-modified"
              "--max-work-factor"
              "20"
            ]
          ))
          (eq "LoadCredentialEncrypted" x.service.LoadCredentialEncrypted "passphrase:/etc/credstore.encrypted/zeta-creds.passphrase")
          (eq "no fallback by default" x.fallback null)
          # The failure report: outside the sandbox, only on 243, the lines
          # as one single-quoted shell word each.
          (eq "ExecStopPost" x.service.ExecStopPost (
            "+/bin/sh -c \"if [ \\\"$$EXIT_CODE\\\" = exited ] && [ \\\"$$EXIT_STATUS\\\" = 243 ]; then set -- "
            + "'the sealed passphrase /etc/credstore.encrypted/zeta-creds.passphrase (LoadCredentialEncrypted=passphrase:/etc/credstore.encrypted/zeta-creds.passphrase) could not be decrypted, so systemd did not start zeta-creds (status 243/CREDENTIALS) and nothing was restored.' "
            + "'likely causes: the file is missing; it was sealed on another machine; or this machine'\\\\''s TPM2 no longer unseals it (the TPM was cleared or reset, or a firmware, Secure Boot or boot loader update changed the PCRs it is bound to).' "
            + "'to restore now: run `zeta-creds restore --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --on-conflict keep-modified --max-work-factor 20` as root on a terminal (it asks for the passphrase), or boot with zeta.credsRestore.passphrase.mode = \\\"interactive\\\" (or passphrase.credentialFallback = \\\"interactive\\\").' "
            + "'then re-seal it on this machine: systemd-ask-password -n \\\"zeta-creds passphrase:\\\" | systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=7 --name=passphrase - /etc/credstore.encrypted/zeta-creds.passphrase (the PCRs you sealed with; installer: zeta-creds-step.sh --seal-tpm2).'; "
            + "for l; do printf '<3>%%s\\\\n' \\\"$$l\\\"; printf 'zeta-creds-restore: %%s\\\\n' \\\"$$l\\\" 2>/dev/null >/dev/console || :; done; "
            + "else rm -f /run/zeta-creds-credential-failed; fi\""
          ))
          # the hook's console write passes the cgroup device policy
          (eq "DeviceAllow" x.service.DeviceAllow "/dev/console w")
          (holds "no fallback marker without the fallback" (
            builtins.match ".*: >/run/zeta-creds-credential-failed.*" x.service.ExecStopPost == null
          ))
          (eq "RequiresMountsFor" x.unit.RequiresMountsFor [
            "/boot"
            "/etc/zeta"
            "/etc/credstore.encrypted"
          ])
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "120")
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
          ])
        ];
    }
    {
      name = "user, persona, policy, work factor and custom paths";
      checks =
        let
          x = mkHome {
            blob = "/boot/efi/zc.enc";
            usbUuidFile = "/var/lib/zeta/usb-uuid";
            user = "ops";
            persona = "team-2";
            onConflict = "backup";
            maxWorkFactor = 18;
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zc";
            };
          } "/srv/ops";
        in
        common x
        ++ [
          (eq "argv" x.argv (
            head
            ++ [
              "--blob"
              "/boot/efi/zc.enc"
              "--usb-uuid-file"
              "/var/lib/zeta/usb-uuid"
              "--on-conflict"
              "backup"
              "--max-work-factor"
              "18"
              "--user"
              "ops"
              "--persona"
              "team-2"
            ]
          ))
          (eq "ConditionPathExists" x.unit.ConditionPathExists [
            "/boot/efi/zc.enc"
            "/var/lib/zeta/usb-uuid"
            "!/run/zeta-creds-already-restored"
          ])
          (eq "RequiresMountsFor" x.unit.RequiresMountsFor [
            "/boot/efi"
            "/var/lib/zeta"
            "/etc/credstore.encrypted"
          ])
          # a home outside /home and /root is made writable
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "/srv/ops"
          ])
        ];
    }
    {
      name = "credential mode, interactive fallback";
      checks =
        let
          x = u.mkUnit {
            cfg = {
              user = "zeta";
              passphrase = {
                mode = "credential";
                credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
                credentialFallback = "interactive";
                timeout = 60;
              };
            };
            binary = bin;
            shell = "/nix/store/33333333333333333333333333333333-bash-5.2/bin/bash";
          };
          f = x.fallback;
        in
        common x
        ++ [
          (eq "OnFailure" x.unit.OnFailure [ "zeta-creds-restore-fallback.service" ])
          (holds "ExecStopPost: the given shell, outside the sandbox" (
            builtins.match "[+]/nix/store/33333333333333333333333333333333-bash-5[.]2/bin/bash -c .*" x.service.ExecStopPost != null
          ))
          (holds "ExecStopPost: leaves the marker on 243" (
            builtins.match ".*then set -- .*: >/run/zeta-creds-credential-failed; else rm -f /run/zeta-creds-credential-failed; fi.*" x.service.ExecStopPost != null
          ))
          (eq "message: says it asks on the console" (builtins.elemAt (u.credentialMessage {
            cfg = {
              passphrase = {
                mode = "credential";
                credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
                credentialFallback = "interactive";
              };
            };
            argv = x.argv;
          }) 2) "asking for the passphrase on the console instead (passphrase.credentialFallback = \"interactive\", zeta-creds-restore-fallback.service).")
          (eq "fallback name" f.name "zeta-creds-restore-fallback.service")
          # the same restore, asking on the console
          (eq "fallback argv" f.argv (
            head
            ++ [
              "--blob"
              "/boot/zeta-creds.enc"
              "--usb-uuid-file"
              "/etc/zeta/usb-uuid"
              "--on-conflict"
              "keep-modified"
              "--max-work-factor"
              "20"
              "--user"
              "zeta"
              "--ask-password"
              "--ask-password-timeout"
              "60"
            ]
          ))
          # after the restore; before what waits for the restore
          (eq "fallback After" f.unit.After [
            "local-fs.target"
            "systemd-sysusers.service"
            "userborn.service"
            "zeta-creds-restore.service"
          ])
          (eq "fallback Before" f.unit.Before x.unit.Before)
          (eq "fallback ConditionPathExists" f.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
            "/run/zeta-creds-credential-failed"
          ])
          (eq "fallback TimeoutStartSec (3 x 60 + 120)" f.service.TimeoutStartSec "300")
          (eq "fallback ReadWritePaths" f.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "-/run/systemd/ask-password"
          ])
          (absent "fallback: no credential" f.service "LoadCredentialEncrypted")
          (absent "fallback: no failure hook" f.service "ExecStopPost")
          (absent "fallback: no OnFailure" f.unit "OnFailure")
          (eq "fallback: no [Install] (started by OnFailure= only)" f.install { })
          (holds "fallback text has no [Install]" (builtins.length (builtins.split "[[]Install[]]" f.text) == 1))
          (eq "fallback sandbox is the restore's" (removeAttrs f.service [
            "ExecStart"
            "TimeoutStartSec"
            "ReadWritePaths"
            "RemainAfterExit"
          ]) (removeAttrs x.service [
            "ExecStart"
            "ExecStopPost"
            "DeviceAllow"
            "TimeoutStartSec"
            "ReadWritePaths"
            "LoadCredentialEncrypted"
            "RemainAfterExit"
          ]))
          # The fallback holds no credential: it stays active like the
          # interactive unit, so a second start does not prompt again.
          (eq "fallback RemainAfterExit" f.service.RemainAfterExit true)
          (eq "credential unit RemainAfterExit" x.service.RemainAfterExit false)
          (eq "fallback nixos wantedBy" f.nixos.wantedBy [ ])
          (eq "nixosServices" (builtins.attrNames x.nixosServices) [
            "zeta-creds-rebundle"
            "zeta-creds-rebundle-shutdown"
            "zeta-creds-restore"
            "zeta-creds-restore-check"
            "zeta-creds-restore-fallback"
          ])
          (eq "nixosServices: the fallback" x.nixosServices.zeta-creds-restore-fallback f.nixos)
        ];
    }
    {
      name = "the fallback setting outside credential mode changes nothing";
      checks =
        let
          x = mk { passphrase.credentialFallback = "interactive"; };
        in
        [
          (eq "same unit as the default" x.text (mk { }).text)
          (eq "no fallback" x.fallback null)
        ];
    }
    {
      name = "a home under /home adds nothing";
      checks =
        let
          x = mkHome { user = "zeta"; } "/home/zeta";
        in
        [
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "-/run/systemd/ask-password"
          ])
        ];
    }
    {
      name = "requireUsbPresent";
      checks =
        let
          x = mk {
            requireUsbPresent = true;
            usbWait = 30;
            passphrase.timeout = 60;
          };
        in
        common x
        ++ [
          # the stick is waited for before the prompt
          (eq "argv" x.argv (
            head
            ++ [
              "--blob"
              "/boot/zeta-creds.enc"
              "--usb-uuid-file"
              "/etc/zeta/usb-uuid"
              "--on-conflict"
              "keep-modified"
              "--max-work-factor"
              "20"
              "--require-usb-present"
              "--usb-wait"
              "30"
              "--ask-password"
              "--ask-password-timeout"
              "60"
            ]
          ))
          # 3 x 60 + 30 + 120
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "330")
          (eq "BindReadOnlyPaths" x.service.BindReadOnlyPaths "-/dev/disk/by-uuid")
        ];
    }
    {
      name = "requireUsbPresent with the default wait, file mode";
      checks =
        let
          x = mk {
            requireUsbPresent = true;
            passphrase = {
              mode = "file";
              file = "/run/zc/p";
            };
          };
        in
        [
          (eq "argv tail" (builtins.genList (i: builtins.elemAt x.argv (i + 10)) 5) [
            "--require-usb-present"
            "--usb-wait"
            "10"
            "--passphrase-file"
            "/run/zc/p"
          ])
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "130")
        ];
    }
    {
      name = "a prompt that waits forever";
      checks =
        let
          x = mk { passphrase.timeout = 0; };
        in
        [
          (eq "ask timeout" (builtins.elemAt x.argv 12) "0")
          (eq "TimeoutStartSec" x.service.TimeoutStartSec "infinity")
        ];
    }
    {
      name = "onConflict overwrite";
      checks = [ (eq "policy" (builtins.elemAt (mk { onConflict = "overwrite"; }).argv 7) "overwrite") ];
    }
    {
      name = "extraWritablePaths";
      checks =
        let
          x = mk {
            extraWritablePaths = [ "/var/lib/myservice" ];
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/z";
            };
          };
        in
        [
          (eq "ReadWritePaths" x.service.ReadWritePaths [
            "/etc"
            "/home"
            "/root"
            "-/var/lib/myservice"
          ])
        ];
    }
    {
      name = "ExecStart escaping";
      checks = [
        (eq "plain" (u.escapeWord "/boot/zeta-creds.enc") "/boot/zeta-creds.enc")
        (eq "space" (u.escapeWord "a b") "\"a b\"")
        (eq "percent" (u.escapeWord "50%") "\"50%%\"")
        (eq "dollar" (u.escapeWord "$HOME") "\"$$HOME\"")
        (eq "quote" (u.escapeWord "say \"hi\"") "\"say \\\"hi\\\"\"")
        (eq "backslash" (u.escapeWord "a\\b") "\"a\\\\b\"")
        (eq "argv" (u.escapeArgv [
          "/bin/x"
          "--persona"
          "a b"
        ]) "/bin/x --persona \"a b\"")
      ];
    }
    {
      name = "path checks";
      checks = [
        (holds "/boot/zeta-creds.enc is external" (u.isExternalPath "/nix/store" "/boot/zeta-creds.enc"))
        (holds "a store path is not" (!(u.isExternalPath "/nix/store" "/nix/store/abc-passphrase")))
        (holds "the store itself is not" (!(u.isExternalPath "/nix/store" "/nix/store")))
        (holds "/nix/storefront is (only the store is refused)" (u.isExternalPath "/nix/store" "/nix/storefront/x"))
        (holds "a relative path is not" (!(u.isExternalPath "/nix/store" "run/passphrase")))
        (holds "a path with .. is not" (!(u.isExternalPath "/nix/store" "/run/../nix/store/x")))
        (holds "a path with a space is not" (!(u.isExternalPath "/nix/store" "/run/my passphrase")))
        (holds "a path with % is not" (!(u.isExternalPath "/nix/store" "/run/%n")))
        (holds "a Nix path literal is not (it is not a string)" (!(u.isExternalPath "/nix/store" /run/passphrase)))
        (holds "a user name" (u.isUserName "zeta"))
        (holds "not a user name" (!(u.isUserName "Bad User")))
        (holds "a persona" (u.isPersona "team-2"))
        (holds "not a persona" (!(u.isPersona "Ops!")))
      ];
    }
  ];

  # Each assertion of unit.nix, made to fail by one setting, must fail with
  # its own message (matched by a phrase from it), and only that one.
  assertionCases =
    let
      fires =
        name: args: phrase:
        let
          failed = u.failedAssertions args;
        in
        {
          inherit name;
          checks = [
            (holds "exactly one assertion fails (got ${toJSON failed})" (length failed == 1))
            (holds "the message says \"${phrase}\" (got ${toJSON failed})" (
              all (m: builtins.match ".*${phrase}.*" m != null) failed
            ))
          ];
        };
      esc = s: builtins.replaceStrings [ "." "(" ")" "[" "]" "*" "+" "?" "{" "}" "|" "^" "$" "\\" ] [ "[.]" "[(]" "[)]" "[[]" "\\]" "[*]" "[+]" "[?]" "[{]" "[}]" "[|]" "\\^" "[$]" "\\\\" ] s;
    in
    [
      {
        name = "a valid configuration passes every assertion";
        checks = [
          (eq "failed" (u.failedAssertions { cfg = { }; }) [ ])
          (eq "failed, every mode" (concatLists (
            map (
              cfg:
              u.failedAssertions {
                inherit cfg;
                userHome = "/home/zeta";
              }
            ) [
              {
                user = "zeta";
                persona = "ops";
                requireUsbPresent = true;
              }
              {
                passphrase = {
                  mode = "file";
                  file = "/run/zeta-creds/passphrase";
                };
              }
              {
                passphrase = {
                  mode = "credential";
                  credential = "/etc/credstore.encrypted/zeta-creds.passphrase";
                };
              }
              {
                passphrase = {
                  mode = "credential";
                  credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
                  credentialFallback = "interactive";
                };
              }
            ]
          )) [ ])
        ];
      }
      (fires "file mode without a file" {
        cfg.passphrase.mode = "file";
      } (esc "passphrase.mode = \"file\" needs zeta.credsRestore.passphrase.file"))
      (fires "credential mode without a credential" {
        cfg.passphrase.mode = "credential";
      } (esc "passphrase.mode = \"credential\" needs zeta.credsRestore.passphrase.credential: seal the passphrase to this machine's TPM2 (installer: zeta-creds-step.sh --seal-tpm2"))
      (fires "a blob in the store" {
        cfg.blob = "/nix/store/aaaa-zeta-creds.enc";
      } (esc "zeta.credsRestore.blob = \"/nix/store/aaaa-zeta-creds.enc\" is inside the Nix store"))
      (fires "a UUID file in the store" {
        cfg.usbUuidFile = "/nix/store/aaaa-usb-uuid";
      } (esc "zeta.credsRestore.usbUuidFile = \"/nix/store/aaaa-usb-uuid\" is inside the Nix store"))
      (fires "a passphrase file in the store" {
        cfg.passphrase = {
          mode = "file";
          file = "/nix/store/aaaa-passphrase";
        };
      } (esc "zeta.credsRestore.passphrase.file = \"/nix/store/aaaa-passphrase\" is inside the Nix store"))
      (fires "a credential in the store" {
        cfg.passphrase = {
          mode = "credential";
          credential = "/nix/store/aaaa-cred";
        };
      } (esc "zeta.credsRestore.passphrase.credential = \"/nix/store/aaaa-cred\" is inside the Nix store"))
      (fires "a writable path in the store" {
        cfg.extraWritablePaths = [ "/nix/store/aaaa-dir" ];
      } (esc "zeta.credsRestore.extraWritablePaths = \"/nix/store/aaaa-dir\" is inside the Nix store"))
      (fires "a user whose home is /" {
        cfg.user = "admin";
        userHome = "/";
      } (esc "has users.users.admin.home = \"/\": zeta-creds refuses to restore into a home of /"))
      (fires "a user with no home" {
        cfg.user = "svc";
        userHome = "/var/empty";
      } (esc "users.users.svc.home is /var/empty"))
      (fires "an unknown passphrase mode" {
        cfg.passphrase.mode = "tty";
      } (esc "passphrase.mode must be one of interactive, file, credential, not \"tty\""))
      (fires "an unknown conflict policy" {
        cfg.onConflict = "clobber";
      } (esc "onConflict must be one of keep-modified, overwrite, backup"))
      (fires "a work factor above 22" {
        cfg.maxWorkFactor = 23;
      } (esc "maxWorkFactor must be between 10 and 22"))
      (fires "a work factor below 10" {
        cfg.maxWorkFactor = 9;
      } (esc "maxWorkFactor must be between 10 and 22"))
      (fires "a negative USB wait" {
        cfg.usbWait = -1;
      } (esc "usbWait must be a number of seconds"))
      (fires "an unknown credential fallback" {
        cfg.passphrase = {
          mode = "credential";
          credential = "/etc/credstore.encrypted/z";
          credentialFallback = "ask";
        };
      } (esc "passphrase.credentialFallback must be \"fail\""))
      (fires "a negative prompt timeout with the interactive credential fallback" {
        cfg.passphrase = {
          mode = "credential";
          credential = "/etc/credstore.encrypted/z";
          credentialFallback = "interactive";
          timeout = -1;
        };
      } (esc "passphrase.timeout must be a number of seconds"))
      (fires "a negative prompt timeout" {
        cfg.passphrase.timeout = -5;
      } (esc "passphrase.timeout must be a number of seconds"))
      (fires "a bad user name" {
        cfg.user = "Bad User";
      } (esc "user = \"Bad User\" is not a user name"))
      (fires "a bad persona" {
        cfg.persona = "Ops!";
      } (esc "persona = \"Ops!\" is not a persona name"))
      (fires "an unknown restoreOn" {
        cfg.restoreOn = "sometimes";
      } (esc "restoreOn must be \"new-blob\""))
      (fires "a re-bundle without a sealed passphrase" {
        cfg.rebundle.enable = true;
      } (esc "rebundle.enable needs passphrase.mode = \"credential\""))
      {
      name = "restoreOn = \"new-blob\" (the default): the check unit";
      checks =
        let
          x = mk { };
          k = x.check;
          ks = k.service;
          cred = mk {
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds-passphrase";
            };
          };
          file = mk {
            passphrase = {
              mode = "file";
              file = "/run/zeta-creds/passphrase";
            };
          };
        in
        [
          (eq "name" k.name "zeta-creds-restore-check.service")
          (eq "argv: the header check only, no passphrase source" k.argv [
            bin
            "restore"
            "--blob"
            "/boot/zeta-creds.enc"
            "--usb-uuid-file"
            "/etc/zeta/usb-uuid"
            "--if-new"
            "--check"
          ])
          (eq "the restore itself has no --if-new (the check decided)" (builtins.elem "--if-new" x.argv) false)
          (eq "Before: the restore" k.unit.Before [ "zeta-creds-restore.service" ])
          (eq "After: as the restore" k.unit.After [
            "local-fs.target"
            "systemd-sysusers.service"
            "userborn.service"
          ])
          (eq "ConditionPathExists: as the restore, no marker" k.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
          ])
          (eq "RequiresMountsFor: the blob, the UUID file, the state record" k.unit.RequiresMountsFor [
            "/boot"
            "/etc/zeta"
            "/var/lib/zeta-creds"
          ])
          (eq "Type" ks.Type "oneshot")
          (eq "RemainAfterExit: no (every start of the restore checks again)" ks.RemainAfterExit false)
          (eq "SuccessExitStatus: 10 is an answer" ks.SuccessExitStatus "10")
          (eq "ExecStopPost: the marker from the exit status" ks.ExecStopPost (
            "+/bin/sh -c \"if [ \\\"$$EXIT_CODE\\\" = exited ] && [ \\\"$$EXIT_STATUS\\\" = 0 ]; then : >/run/zeta-creds-already-restored; "
            + "else rm -f /run/zeta-creds-already-restored; fi\""
          ))
          (eq "CapabilityBoundingSet: read only" ks.CapabilityBoundingSet "CAP_DAC_READ_SEARCH")
          (eq "ProtectSystem" ks.ProtectSystem "strict")
          (absent "nothing writable" ks "ReadWritePaths")
          (absent "no state directory created" ks "StateDirectory")
          (absent "no restart" ks "Restart")
          (absent "no memlock" ks "LimitMEMLOCK")
          (eq "the restore's sandbox otherwise" {
            inherit (ks) PrivateTmp PrivateDevices PrivateNetwork NoNewPrivileges SystemCallFilter RestrictAddressFamilies;
          } {
            PrivateTmp = true;
            PrivateDevices = true;
            PrivateNetwork = true;
            NoNewPrivileges = true;
            SystemCallFilter = "@system-service";
            RestrictAddressFamilies = "AF_UNIX";
          })
          (eq "no [Install]: started by the restore's Wants=" k.install { })
          (eq "nixos.wantedBy" k.nixos.wantedBy [ ])
          (eq "nixosServices" x.nixosServices.zeta-creds-restore-check k.nixos)
          (eq "units: the check's text" x.units."zeta-creds-restore-check.service" k.text)
          # Credential mode: the check holds no credential, so the TPM is
          # not asked to unseal anything when it runs.
          (absent "credential mode: no credential in the check" cred.check.service "LoadCredentialEncrypted")
          (eq "credential mode: the same check" cred.check.argv k.argv)
          (eq "credential mode: the restore still loads it" cred.service.LoadCredentialEncrypted "passphrase:/etc/credstore.encrypted/zeta-creds-passphrase")
          (eq "credential mode: the restore is skipped by the marker" (
            builtins.elem "!/run/zeta-creds-already-restored" cred.unit.ConditionPathExists
          ) true)
          # File mode: the check reads no passphrase file; when it skips
          # the restore it removes the one staged for it, and the restore
          # removes one it was refused before reading.
          (eq "file mode: the same check" file.check.argv k.argv)
          (holds "file mode: no passphrase file named in the check" (
            builtins.match ".*passphrase.*" k.service.ExecStart == null
          ))
          (eq "file mode: a skip removes the staged passphrase" file.check.service.ExecStopPost (
            "+/bin/sh -c \"if [ \\\"$$EXIT_CODE\\\" = exited ] && [ \\\"$$EXIT_STATUS\\\" = 0 ]; then : >/run/zeta-creds-already-restored; "
            + "rm -f '/run/zeta-creds/passphrase'; else rm -f /run/zeta-creds-already-restored; fi\""
          ))
          (eq "file mode: the restore removes a passphrase it did not read" file.service.ExecStopPost
            "+/bin/sh -c \"rm -f '/run/zeta-creds/passphrase'\""
          )
        ];
    }
    {
      name = "restoreOn = \"every-boot\": no check, as before issue 17";
      checks =
        let
          x = mk { restoreOn = "every-boot"; };
        in
        common x
        ++ [
          (eq "no check unit" x.check null)
          (absent "no Wants" x.unit "Wants")
          (eq "ConditionPathExists" x.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
          ])
          (eq "units" (builtins.attrNames x.units) [
            "zeta-creds-rebundle.service"
            "zeta-creds-rebundle.timer"
            "zeta-creds-restore.service"
          ])
          (eq "nixosServices" (builtins.attrNames x.nixosServices) [
            "zeta-creds-rebundle"
            "zeta-creds-restore"
          ])
          (eq "the restore's ExecStart is unchanged" x.service.ExecStart (mk { }).service.ExecStart)
        ];
    }
    {
      name = "rebundle, credential mode: sealed by the timer and before shutdown (issue 18)";
      checks =
        let
          x = mk {
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds";
            };
          };
          r = x.rebundle;
          s = r.service.service;
          d = r.shutdown;
          argv = "${bin} rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --max-work-factor 20 --notice /run/zeta-creds-notice/stale";
          # The sandbox the restore has, key by key, that the re-bundle
          # keeps as it is.
          same = [
            "ProtectSystem"
            "UMask"
            "LimitMEMLOCK"
            "LimitCORE"
            "PrivateTmp"
            "PrivateDevices"
            "PrivateNetwork"
            "PrivateIPC"
            "PrivateMounts"
            "IPAddressDeny"
            "RestrictAddressFamilies"
            "NoNewPrivileges"
            "ProtectKernelTunables"
            "ProtectKernelModules"
            "ProtectKernelLogs"
            "ProtectControlGroups"
            "ProtectClock"
            "ProtectHostname"
            "ProtectProc"
            "ProcSubset"
            "RestrictNamespaces"
            "RestrictRealtime"
            "RestrictSUIDSGID"
            "LockPersonality"
            "MemoryDenyWriteExecute"
            "SystemCallArchitectures"
            "SystemCallFilter"
            "SystemCallErrorNumber"
            "KeyringMode"
            "LoadCredentialEncrypted"
            "SyslogIdentifier"
          ];
        in
        [
          (eq "seals" r.seals true)
          (eq "ExecStart: the binary, no shell, no --report-only" s.ExecStart argv)
          (eq "After: every restore unit" r.service.unit.After [
            "local-fs.target"
            "zeta-creds-restore.service"
            "zeta-creds-restore-fallback.service"
            "zeta-creds-restore-check.service"
          ])
          (eq "ConditionPathExists: blob, stick, manifest, state record" r.service.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
            "/etc/zeta/creds-manifest.toml"
            "/var/lib/zeta-creds/state.json"
          ])
          (eq "RequiresMountsFor" r.service.unit.RequiresMountsFor [
            "/boot"
            "/etc/zeta"
            "/etc/credstore.encrypted"
          ])
          (eq "the restore's credential" s.LoadCredentialEncrypted "passphrase:/etc/credstore.encrypted/zeta-creds")
          (eq "writes only the blob's directory" s.ReadWritePaths [ "/boot" ])
          (eq "and the state record" s.StateDirectory "zeta-creds")
          (eq "reads homes, writes none" s.ProtectHome "read-only")
          (eq "reads the users' files, chowns nothing" s.CapabilityBoundingSet "CAP_DAC_READ_SEARCH CAP_IPC_LOCK")
          (eq "stale-but-reported is not a failure" s.SuccessExitStatus "10")
          # A TPM2 that no longer unseals: the restore's lines, said of the
          # re-bundle, to the journal only, the ESP untouched (issue 18).
          (eq "ExecStopPost: the credential failure, journal only" s.ExecStopPost (
            "+/bin/sh -c \"if [ \\\"$$EXIT_CODE\\\" = exited ] && [ \\\"$$EXIT_STATUS\\\" = 243 ]; then set -- "
            + "'the sealed passphrase /etc/credstore.encrypted/zeta-creds (LoadCredentialEncrypted=passphrase:/etc/credstore.encrypted/zeta-creds) could not be decrypted, so systemd did not start zeta-creds (status 243/CREDENTIALS) and nothing was re-bundled: the blob on the ESP was not touched, and it is not kept fresh until this is fixed.' "
            + "'likely causes: the file is missing; it was sealed on another machine; or this machine'\\\\''s TPM2 no longer unseals it (the TPM was cleared or reset, or a firmware, Secure Boot or boot loader update changed the PCRs it is bound to).' "
            + "'to re-bundle now: run `zeta-creds rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --max-work-factor 20 --notice /run/zeta-creds-notice/stale` as root on a terminal (it asks for the passphrase).' "
            + "'then re-seal it on this machine: systemd-ask-password -n \\\"zeta-creds passphrase:\\\" | systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=7 --name=passphrase - /etc/credstore.encrypted/zeta-creds (the PCRs you sealed with; installer: zeta-creds-step.sh --seal-tpm2).'; "
            + "for l; do printf '<3>%%s\\\\n' \\\"$$l\\\"; done; fi\""
          ))
          (eq "the notice directory" {
            inherit (s) RuntimeDirectory RuntimeDirectoryMode RuntimeDirectoryPreserve;
          } {
            RuntimeDirectory = "zeta-creds-notice";
            RuntimeDirectoryMode = "0755";
            RuntimeDirectoryPreserve = true;
          })
          (absent "no restart" s "Restart")
          (eq "the restore's sandbox, key by key" (map (k: s.${k}) same) (map (k: x.service.${k}) same))
          (eq "started by the timer only" r.service.nixos.wantedBy [ ])
          (eq "timer" r.timer.timer {
            OnCalendar = "hourly";
            RandomizedDelaySec = "15min";
            Persistent = false;
          })
          (eq "timer text" r.timer.text (
            "# zeta-creds-rebundle.timer, rendered by nixos-modules/unit.nix\n"
            + "[Unit]\n"
            + "Description=Keep the zeta-creds blob fresh, hourly\n"
            + "Documentation=man:zeta-creds-rebundle(1)\n"
            + "Documentation=https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md\n"
            + "\n"
            + "[Timer]\n"
            + "OnCalendar=hourly\n"
            + "RandomizedDelaySec=15min\n"
            + "Persistent=no\n"
            + "\n"
            + "[Install]\n"
            + "WantedBy=timers.target\n"
          ))
          (eq "nixosTimers" x.nixosTimers {
            zeta-creds-rebundle = {
              description = "Keep the zeta-creds blob fresh, hourly";
              documentation = [
                "man:zeta-creds-rebundle(1)"
                "https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md"
              ];
              wantedBy = [ "timers.target" ];
              timerConfig = {
                OnCalendar = "hourly";
                RandomizedDelaySec = "15min";
                Persistent = false;
              };
            };
          })
          (eq "nixosServices: the re-bundle" x.nixosServices.zeta-creds-rebundle r.service.nixos)
          # Before shutdown: active from boot, the re-bundle is its stop.
          (eq "shutdown: RemainAfterExit" d.service.RemainAfterExit true)
          (absent "shutdown: no ExecStart" d.service "ExecStart")
          (eq "shutdown: ExecStop starts the re-bundle unit, which unseals only while it runs" d.service.ExecStop
            "systemctl start --job-mode=ignore-dependencies zeta-creds-rebundle.service"
          )
          (eq "shutdown: TimeoutStopSec" d.service.TimeoutStopSec "360")
          (absent "shutdown: holds no credential" d.service "LoadCredentialEncrypted")
          (eq "shutdown: wanted at boot" d.nixos.wantedBy [ "multi-user.target" ])
          (eq "shutdown: after the restore units" d.unit.After r.service.unit.After)
          (eq "shutdown: no state-record condition at boot" d.unit.ConditionPathExists [
            "/boot/zeta-creds.enc"
            "/etc/zeta/usb-uuid"
            "/etc/zeta/creds-manifest.toml"
          ])
          (eq "shutdown: not stopped (so not re-bundled) by a switch" d.nixos.stopIfChanged false)
          (eq "nixosServices: the shutdown unit" x.nixosServices.zeta-creds-rebundle-shutdown d.nixos)
        ];
    }
    {
      name = "rebundle, interactive and file mode: the timer only reports";
      checks =
        let
          x = mk { persona = "ops"; };
          f = mk {
            passphrase = {
              mode = "file";
              file = "/run/zeta-creds/passphrase";
            };
          };
          s = x.rebundle.service.service;
        in
        [
          (eq "seals" x.rebundle.seals false)
          (eq "ExecStart" s.ExecStart "${bin} rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --max-work-factor 20 --notice /run/zeta-creds-notice/stale --persona ops --report-only")
          (eq "file mode: the same" f.rebundle.service.service.ExecStart "${bin} rebundle --blob /boot/zeta-creds.enc --usb-uuid-file /etc/zeta/usb-uuid --max-work-factor 20 --notice /run/zeta-creds-notice/stale --report-only")
          (absent "no credential" s "LoadCredentialEncrypted")
          (absent "no credential failure to report" s "ExecStopPost")
          (absent "writes no blob" s "ReadWritePaths")
          (absent "writes no record" s "StateDirectory")
          (eq "no IPC_LOCK: no secret held" s.CapabilityBoundingSet "CAP_DAC_READ_SEARCH")
          (eq "no shutdown unit" x.rebundle.shutdown null)
          (eq "no credential mount" x.rebundle.service.unit.RequiresMountsFor [
            "/boot"
            "/etc/zeta"
          ])
        ];
    }
    {
      name = "rebundle switched off";
      checks =
        let
          off = mk { rebundle.report = false; };
          reportOnly = mk {
            passphrase = {
              mode = "credential";
              credential = "/etc/credstore.encrypted/zeta-creds";
            };
            rebundle.enable = false;
          };
        in
        [
          (eq "report = false outside credential mode: nothing" off.rebundle null)
          (eq "no timer" off.nixosTimers { })
          (eq "credential mode, enable = false: reports only" reportOnly.rebundle.seals false)
          (absent "and holds no credential" reportOnly.rebundle.service.service "LoadCredentialEncrypted")
          (eq "u.rebundleSeals agrees" (u.rebundleSeals (u.withDefaults { rebundle.enable = false; })) false)
        ];
    }
    {
      name = "the follow-up unit of a secret manager (mkFollowUp)";
      checks =
        let
          f = u.mkFollowUp {
            name = "zeta-creds-sops-nix";
            description = "Install sops-nix secrets";
            execStart = "/nix/store/55555555555555555555555555555555-sops-install-secrets/bin/sops-install-secrets /nix/store/66666666666666666666666666666666-manifest.json";
            conditions = [ "!/run/secrets" ];
            triggers = [
              "/var/lib/sops-nix/key.txt"
              "/etc/ssh/ssh_host_ed25519_key"
            ];
            consumers = [ "nginx.service" ];
          };
        in
        [
          (eq "name" f.name "zeta-creds-sops-nix.service")
          (eq "After: both restore units" f.unit.After [
            "zeta-creds-restore.service"
            "zeta-creds-restore-fallback.service"
          ])
          (eq "Before: the consumers" f.unit.Before [ "nginx.service" ])
          (eq "ConditionPathExists: the conditions ANDed, the triggers ORed" f.unit.ConditionPathExists [
            "!/run/secrets"
            "|/var/lib/sops-nix/key.txt"
            "|/etc/ssh/ssh_host_ed25519_key"
          ])
          (eq "Type" f.service.Type "oneshot")
          (eq "RemainAfterExit" f.service.RemainAfterExit true)
          (eq "WantedBy" f.install.WantedBy [ "multi-user.target" ])
          (eq "no start limits of its own" (f.nixos ? startLimitBurst) false)
          (eq "not restarted by a switch" f.nixos.restartIfChanged false)
          (eq "text" f.text (
            "# zeta-creds-sops-nix.service, rendered by nixos-modules/unit.nix\n"
            + "[Unit]\n"
            + "Description=Install sops-nix secrets\n"
            + "Documentation=https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md\n"
            + "After=zeta-creds-restore.service\n"
            + "After=zeta-creds-restore-fallback.service\n"
            + "Before=nginx.service\n"
            + "ConditionPathExists=!/run/secrets\n"
            + "ConditionPathExists=|/var/lib/sops-nix/key.txt\n"
            + "ConditionPathExists=|/etc/ssh/ssh_host_ed25519_key\n"
            + "\n"
            + "[Service]\n"
            + "Type=oneshot\n"
            + "RemainAfterExit=yes\n"
            + "ExecStart=/nix/store/55555555555555555555555555555555-sops-install-secrets/bin/sops-install-secrets /nix/store/66666666666666666666666666666666-manifest.json\n"
            + "SyslogIdentifier=zeta-creds-sops-nix\n"
            + "\n"
            + "[Install]\n"
            + "WantedBy=multi-user.target\n"
          ))
        ];
    }
  ];

  all' = cases ++ assertionCases;
  results = concatLists (map (c: map (r: if r == null then null else "${c.name}: ${r}") c.checks) all');
in
{
  count = length results;
  failures = filter isString results;
  cases = map (c: c.name) all';
}
