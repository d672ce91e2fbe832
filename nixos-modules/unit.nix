# zeta-creds-restore.service as a pure function of the configuration.
#
# This file uses builtins only: no nixpkgs, no `lib`, nothing written to the
# store. That is what lets `tests/nix/run.sh` evaluate the whole unit with a
# bare `nix-instantiate`, and `tests/vm/run.sh` render the very unit the
# NixOS module installs and boot it under a real systemd. The NixOS module
# (`zeta-creds-restore.nix`) declares the options and hands their values
# here; everything the unit *does* is decided in this file.
#
#   let u = import ./unit.nix; in
#   u.mkUnit {
#     cfg = { passphrase.mode = "credential"; passphrase.credential = "/etc/credstore.encrypted/zeta-creds"; };
#     binary = "/nix/store/…-zeta-creds-0.1.0/bin/zeta-creds";
#     userHome = "/home/zeta";          # users.users.<cfg.user>.home, or null
#   }
#   => { name; argv; unit; service; install; nixos; text;
#        fallback;        # null, or the same for zeta-creds-restore-fallback.service
#        check;           # null (restoreOn = "every-boot"), or the same for
#                         # zeta-creds-restore-check.service
#        units;           # { "<unit name>" = text; } for every unit
#        nixosServices; } # the same as NixOS's systemd.services
#
#   u.failedAssertions { cfg; userHome; } => [ "message" … ]  (empty: fine)
#
# Why the unit looks the way it does is written next to each setting below,
# and summed up in README.md beside this file.
let
  inherit (builtins)
    all
    attrNames
    concatLists
    concatStringsSep
    dirOf
    elem
    filter
    foldl'
    isInt
    isList
    isString
    map
    match
    removeAttrs
    replaceStrings
    stringLength
    substring
    toString
    ;

  optionals = cond: xs: if cond then xs else [ ];
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  # The option defaults, shared with the module so the two cannot drift.
  # `blob`: the module derives it from boot.loader.efi.efiSysMountPoint
  # (NixOS's ESP, /boot unless the host moved it); this is the same path for
  # the default mount point, for callers without a NixOS configuration.
  defaults = {
    enable = false;
    blob = "/boot/zeta-creds.enc";
    usbUuidFile = "/etc/zeta/usb-uuid";
    requireUsbPresent = false;
    usbWait = 10;
    user = null;
    persona = null;
    passphrase = {
      mode = "interactive";
      file = null;
      credential = null;
      credentialFallback = "fail";
      timeout = 300;
    };
    restoreOn = "new-blob";
    onConflict = "keep-modified";
    maxWorkFactor = 20;
    extraWritablePaths = [ ];
    # Keeping the blob fresh (mkRebundle). `enable = null`: on exactly
    # when passphrase.mode = "credential" (the module's default says the
    # same); `report`: without a passphrase at hand, the timer still says
    # what changed.
    rebundle = {
      enable = null;
      report = true;
    };
  };

  passphraseModes = [
    "interactive"
    "file"
    "credential"
  ];
  # What happens when systemd cannot decrypt the sealed passphrase
  # (passphrase.credentialFallback): fail the unit with the recovery
  # message, or ask on the console as in interactive mode.
  credentialFallbacks = [
    "fail"
    "interactive"
  ];
  conflictPolicies = [
    "keep-modified"
    "overwrite"
    "backup"
  ];
  # When the restore runs: only for a blob that is not the one last
  # restored on this host (zeta-creds-restore-check.service decides, see
  # mkCheck), or at every boot (impermanent roots: tmpfs /,
  # erase-your-darlings, where nothing restored survives a reboot).
  restoreOns = [
    "new-blob"
    "every-boot"
  ];
  # The work factors a blob may carry (docs/FORMAT.md, §3.2).
  minWorkFactor = 10;
  maxWorkFactor = 22;

  # Exit statuses of `zeta-creds restore` that a retry cannot fix (the Exit
  # enum in zeta-creds/src/bin/zeta-creds/exit.rs, `retry_may_help`;
  # zeta-creds/tests/exit_table.rs fails when this list drifts): 2 usage,
  # 3 wrong passphrase, 4 another USB stick, 5 a corrupt or tampered blob,
  # 6 an input missing (this includes a prompt that timed out), 7 some
  # entries could not be written (the others are in place; a retry would
  # ask the passphrase again for the same result), 8 rollback refused. And
  # 243, systemd's own CREDENTIALS: LoadCredentialEncrypted= could not
  # decrypt the passphrase (a missing file, another machine's host key or
  # TPM), which no retry changes. Only 1 (an unexpected error, e.g. an I/O
  # error) and death by a signal are retried.
  noRestartExitStatuses = [
    2
    3
    4
    5
    6
    7
    8
    243
  ];

  # Seconds added to TimeoutStartSec on top of the waits the unit knows about:
  # scrypt at the highest accepted work factor, plus writing the files.
  workMarginSecs = 120;

  # Exactly what an interactive prompt may cost: the program asks at most
  # three times (a wrong answer asks again; a timed-out one ends the run).
  maxTries = 3;

  # The capabilities a root writer of /etc and homes needs, and no more:
  # chown to the owners named in the blob, chmod/utimes files it does not
  # own, write and traverse directories regardless of their modes, and
  # mlockall() the passphrase and keys.
  capabilities = [
    "CAP_CHOWN"
    "CAP_FOWNER"
    "CAP_DAC_OVERRIDE"
    "CAP_DAC_READ_SEARCH"
    "CAP_IPC_LOCK"
  ];

  # Paths the restore writes under ProtectSystem=strict. /etc: host keys,
  # operator keys; /home and /root: the users' tool logins. /var/lib/zeta-creds
  # (the state record) and /var/lib/sops-nix (the sops-nix age key of the
  # default manifest) are StateDirectory= below, so they exist and are
  # writable even on a fresh install.
  writablePaths = [
    "/etc"
    "/home"
    "/root"
  ];
  stateDirectories = [
    "zeta-creds"
    "sops-nix"
  ];

  # The units sops-nix and agenix install secrets with when they run as
  # systemd units (sops-nix: sops.useSystemdActivation, the default under
  # systemd-sysusers or userborn; agenix: under sysusers or userborn).
  secretInstallers = [
    "sops-install-secrets.service"
    "agenix-install-secrets.service"
  ];

  askPasswordDir = "/run/systemd/ask-password";
  usbDeviceDir = "/dev/disk/by-uuid";

  # The sandbox every unit that holds the passphrase or a carried file
  # shares (the restore, the re-bundle); each adds what it may write and
  # the capabilities it needs.
  hardening = {
    SyslogIdentifier = "zeta-creds";
    # Secrets stay in RAM: zeta-creds mlockall()s only when the limit is
    # unlimited, and never dumps core.
    LimitMEMLOCK = "infinity";
    LimitCORE = 0;
    UMask = "0077";
    ProtectSystem = "strict";
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateNetwork = true;
    PrivateIPC = true;
    PrivateMounts = true;
    IPAddressDeny = "any";
    # AF_UNIX only: the journal and the ask-password agent socket.
    RestrictAddressFamilies = "AF_UNIX";
    NoNewPrivileges = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    # A credential is never setuid; a root writer of /etc must not be able
    # to plant one.
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = "@system-service";
    SystemCallErrorNumber = "EPERM";
    KeyringMode = "private";
  };

  ## Value checks (the module's types use the same predicates) ##############

  isStorePath =
    storeDir: p:
    isString p && (p == storeDir || substring 0 (stringLength storeDir + 1) p == storeDir + "/");

  # Characters a path may use so that it goes into a unit file and into
  # ExecStart= without quoting: no whitespace, no `%` (a unit specifier), no
  # `$`, quotes, backslashes or control characters.
  safePathChars = p: match "/[A-Za-z0-9._/+@:,=~-]*" p != null;
  hasDotDot = p: match "(.*/)?[.][.](/.*)?" p != null;

  # An absolute path outside the Nix store: what a secret or a runtime file
  # must be. A Nix path literal (./secret) is not a string, so it is refused
  # before anything copies it into the world-readable store.
  isExternalPath =
    storeDir: p: isString p && safePathChars p && !(hasDotDot p) && !(isStorePath storeDir p);

  # User names as useradd and NixOS accept them.
  isUserName = u: isString u && stringLength u <= 32 && match "[A-Za-z_][A-Za-z0-9_.-]*[$]?" u != null;
  # Persona names as the envelope accepts them (zeta-creds: up to 64 of
  # a-z, 0-9, _ and -).
  isPersona = p: isString p && stringLength p <= 64 && match "[a-z0-9_-]+" p != null;

  ## Merging a partial configuration over the defaults ######################

  withDefaults =
    cfg:
    defaults
    // cfg
    // {
      passphrase = defaults.passphrase // (cfg.passphrase or { });
      rebundle = defaults.rebundle // (cfg.rebundle or { });
    };

  ## Assertions ##############################################################

  # Every problem the configuration can have, each with a message that says
  # what to set. The module turns these into NixOS `assertions`; the tests
  # check each message fires. `userHome` is users.users.<user>.home when the
  # module knows the user, else null.
  assertionsFor =
    {
      cfg,
      userHome ? null,
      storeDir ? "/nix/store",
    }:
    let
      c = withDefaults cfg;
      pp = c.passphrase;
      storeMsg =
        option: value:
        "zeta.credsRestore.${option} = \"${toString value}\" is inside the Nix store (${storeDir}), "
        + "which every user and every binary cache can read. Keep it outside the store: "
        + "an absolute path as a string (\"/run/…\", \"/etc/credstore.encrypted/…\"), "
        + "never a Nix path literal such as ./passphrase.";
      pathOk =
        option: value: {
          assertion = !(isStorePath storeDir value);
          message = storeMsg option value;
        };
    in
    [
      (pathOk "blob" c.blob)
      (pathOk "usbUuidFile" c.usbUuidFile)
      {
        assertion = elem pp.mode passphraseModes;
        message = "zeta.credsRestore.passphrase.mode must be one of ${concatStringsSep ", " passphraseModes}, not \"${toString pp.mode}\".";
      }
      {
        assertion = pp.mode != "file" || pp.file != null;
        message =
          "zeta.credsRestore.passphrase.mode = \"file\" needs zeta.credsRestore.passphrase.file: "
          + "set it to the file something stages before boot reaches the unit (e.g. \"/run/zeta-creds/passphrase\"; "
          + "zeta-creds deletes it after reading), or use passphrase.mode = \"credential\" "
          + "(a systemd-creds sealed file) or \"interactive\" (asked on the console).";
      }
      {
        assertion = pp.mode != "credential" || pp.credential != null;
        message =
          "zeta.credsRestore.passphrase.mode = \"credential\" needs zeta.credsRestore.passphrase.credential: "
          + "seal the passphrase to this machine's TPM2 (installer: zeta-creds-step.sh --seal-tpm2; on the host: "
          + "`systemd-creds encrypt --with-key=tpm2 --name=passphrase - /etc/credstore.encrypted/zeta-creds-passphrase`) "
          + "and set passphrase.credential = \"/etc/credstore.encrypted/zeta-creds-passphrase\", or use passphrase.mode = \"interactive\".";
      }
      {
        assertion = elem pp.credentialFallback credentialFallbacks;
        message =
          "zeta.credsRestore.passphrase.credentialFallback must be \"fail\" (a credential systemd cannot decrypt fails the unit, "
          + "with the recovery in the journal) or \"interactive\" (ask on the console instead), not \"${toString pp.credentialFallback}\".";
      }
      {
        assertion =
          !(pp.mode == "interactive" || (pp.mode == "credential" && pp.credentialFallback == "interactive"))
          || (isInt pp.timeout && pp.timeout >= 0);
        message = "zeta.credsRestore.passphrase.timeout must be a number of seconds (0 waits forever), not ${toString pp.timeout}.";
      }
      {
        assertion = elem c.restoreOn restoreOns;
        message =
          "zeta.credsRestore.restoreOn must be \"new-blob\" (restore, and ask, only when the blob is not the one last restored here) "
          + "or \"every-boot\" (for a root that forgets what was restored: tmpfs /, erase-your-darlings), not \"${toString c.restoreOn}\".";
      }
      {
        assertion = elem c.onConflict conflictPolicies;
        message = "zeta.credsRestore.onConflict must be one of ${concatStringsSep ", " conflictPolicies}, not \"${toString c.onConflict}\".";
      }
      {
        assertion = isInt c.maxWorkFactor && c.maxWorkFactor >= minWorkFactor && c.maxWorkFactor <= maxWorkFactor;
        message = "zeta.credsRestore.maxWorkFactor must be between ${toString minWorkFactor} and ${toString maxWorkFactor} (log2 of scrypt's N; 20 = 1 GiB of memory), not ${toString c.maxWorkFactor}.";
      }
      {
        assertion = isInt c.usbWait && c.usbWait >= 0;
        message = "zeta.credsRestore.usbWait must be a number of seconds, not ${toString c.usbWait}.";
      }
      {
        assertion = c.user == null || isUserName c.user;
        message = "zeta.credsRestore.user = \"${toString c.user}\" is not a user name.";
      }
      {
        assertion = c.persona == null || isPersona c.persona;
        message = "zeta.credsRestore.persona = \"${toString c.persona}\" is not a persona name: use up to 64 of a-z, 0-9, _ and -.";
      }
      {
        assertion = userHome != "/";
        message =
          "zeta.credsRestore.user = \"${toString c.user}\" has users.users.${toString c.user}.home = \"/\": "
          + "zeta-creds refuses to restore into a home of / (it would write the user's files, owned by them, "
          + "at the top of the filesystem, where a server was once locked out that way). "
          + "Give the user a real home (users.users.${toString c.user}.home = \"/home/${toString c.user}\"; createHome = true;) "
          + "or set zeta.credsRestore.user to another user.";
      }
      {
        assertion = userHome != "/var/empty";
        message =
          "zeta.credsRestore.user = \"${toString c.user}\" has no home (users.users.${toString c.user}.home is /var/empty, "
          + "the default for system users), so the blob's ~/ entries have nowhere to go. "
          + "Set users.users.${toString c.user}.home (and createHome = true), or set zeta.credsRestore.user to another user.";
      }
    ]
    ++ [
      {
        assertion = c.rebundle.enable != true || pp.mode == "credential";
        message =
          "zeta.credsRestore.rebundle.enable needs passphrase.mode = \"credential\": a re-bundle with nobody at the "
          + "machine needs the passphrase without a human (a file-mode passphrase is consumed at boot). "
          + "Leave rebundle.enable unset (interactive and file mode then only report a stale blob, rebundle.report), "
          + "or seal the passphrase to the TPM2 (passphrase.mode = \"credential\").";
      }
    ]
    ++ optionals (pp.mode == "file" && pp.file != null) [ (pathOk "passphrase.file" pp.file) ]
    ++ optionals (pp.mode == "credential" && pp.credential != null) [
      (pathOk "passphrase.credential" pp.credential)
    ]
    ++ map (p: pathOk "extraWritablePaths" p) c.extraWritablePaths;

  failedAssertions =
    args: map (a: a.message) (filter (a: !a.assertion) (assertionsFor args));

  ## Unit file syntax ########################################################

  # One ExecStart= word. Paths are checked to need no quoting; anything else
  # (a persona, a user name) is quoted if it has to be, and `%` and `$` are
  # escaped so systemd neither expands a specifier nor a variable.
  escapeWord =
    w:
    let
      s = replaceStrings [ "%" "$" ] [ "%%" "$$" ] w;
    in
    if match "[A-Za-z0-9_./:=@+,-]+" s != null then
      s
    else
      "\"" + replaceStrings [ "\\" "\"" "\n" ] [ "\\\\" "\\\"" "\\n" ] s + "\"";

  escapeArgv = argv: concatStringsSep " " (map escapeWord argv);

  # A value as a unit file line wants it: bools as yes/no, ints as decimals.
  showValue =
    v:
    if v == true then
      "yes"
    else if v == false then
      "no"
    else
      toString v;

  # One [Section]: lists become one line per element (systemd merges
  # repeated keys of list settings; conditions are ANDed).
  renderSection =
    name: keys: attrs:
    let
      present = filter (k: attrs ? ${k}) keys;
      lines = concatLists (
        map (
          k:
          let
            v = attrs.${k};
          in
          if isList v then map (x: "${k}=${showValue x}") v else [ "${k}=${showValue v}" ]
        ) present
      );
      missing = filter (k: !(elem k keys)) (attrNames attrs);
    in
    if missing != [ ] then
      throw "unit.nix: renderSection ${name}: no order given for ${concatStringsSep ", " missing}"
    else
      "[${name}]\n" + concatStringsSep "\n" lines + "\n";

  unitKeys = [
    "Description"
    "Documentation"
    "Wants"
    "After"
    "Before"
    "OnFailure"
    "ConditionPathExists"
    "RequiresMountsFor"
    "StartLimitIntervalSec"
    "StartLimitBurst"
  ];
  serviceKeys = [
    "Type"
    "RemainAfterExit"
    "ExecStart"
    "ExecStop"
    "SuccessExitStatus"
    "ExecStopPost"
    "Restart"
    "RestartSec"
    "RestartPreventExitStatus"
    "TimeoutStartSec"
    "TimeoutStopSec"
    "SyslogIdentifier"
    "LoadCredentialEncrypted"
    "LimitMEMLOCK"
    "LimitCORE"
    "UMask"
    "ProtectSystem"
    "ProtectHome"
    "ReadWritePaths"
    "StateDirectory"
    "StateDirectoryMode"
    "RuntimeDirectory"
    "RuntimeDirectoryMode"
    "RuntimeDirectoryPreserve"
    "PrivateTmp"
    "PrivateDevices"
    "BindReadOnlyPaths"
    "DeviceAllow"
    "PrivateNetwork"
    "PrivateIPC"
    "PrivateMounts"
    "IPAddressDeny"
    "RestrictAddressFamilies"
    "NoNewPrivileges"
    "CapabilityBoundingSet"
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
  ];
  installKeys = [ "WantedBy" ];
  timerKeys = [
    "OnCalendar"
    "RandomizedDelaySec"
    "Persistent"
  ];

  ## The unit ################################################################

  # The restore unit for one configuration, before the credential-failure
  # handling mkUnit adds: { argv; unit; service; install; }. mkUnit also
  # calls it in interactive mode for the fallback unit.
  mkCore =
    {
      cfg,
      binary,
      userHome ? null,
    }:
    let
      c = withDefaults cfg;
      pp = c.passphrase;
      interactive = pp.mode == "interactive";
      fileMode = pp.mode == "file";
      credentialMode = pp.mode == "credential";

      argv = [
        binary
        "restore"
        "--blob"
        c.blob
        "--usb-uuid-file"
        c.usbUuidFile
        "--on-conflict"
        c.onConflict
        "--max-work-factor"
        (toString c.maxWorkFactor)
      ]
      ++ optionals (c.user != null) [
        "--user"
        c.user
      ]
      ++ optionals (c.persona != null) [
        "--persona"
        c.persona
      ]
      # Waits up to usbWait seconds for /dev/disk/by-uuid/<uuid> before
      # asking anything: a real stick shows up a second or more after
      # local-fs.target.
      ++ optionals c.requireUsbPresent [
        "--require-usb-present"
        "--usb-wait"
        (toString c.usbWait)
      ]
      # credential mode passes nothing: LoadCredentialEncrypted= puts the
      # passphrase at $CREDENTIALS_DIRECTORY/passphrase, the first source
      # zeta-creds looks at.
      ++ optionals interactive [
        "--ask-password"
        "--ask-password-timeout"
        (toString pp.timeout)
      ]
      ++ optionals fileMode [
        "--passphrase-file"
        pp.file
      ];

      # Up to three prompts (each with its own timeout), the stick's wait,
      # and scrypt. A timeout of 0 asks forever, so the unit must wait too.
      timeoutStartSec =
        if interactive && pp.timeout == 0 then
          "infinity"
        else
          toString (
            (if interactive then maxTries * pp.timeout else 0)
            + (if c.requireUsbPresent then c.usbWait else 0)
            + workMarginSecs
          );

      homeOutside =
        userHome != null
        && !(elem userHome writablePaths)
        && all (p: substring 0 (stringLength p + 1) userHome != p + "/") writablePaths;

      unit = {
        Description = "Restore operator credentials from the zeta-creds blob";
        Documentation = [
          "man:zeta-creds-restore(1)"
          "https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md"
        ];
        # After local filesystems (DefaultDependencies= orders us after
        # sysinit.target and basic.target too) and after user creation,
        # whichever mechanism the host uses: systemd-sysusers or userborn
        # (ordering against a unit that does not exist is a no-op); the
        # scripted users of NixOS are created by the activation script,
        # before any service starts.
        After = [
          "local-fs.target"
          "systemd-sysusers.service"
          "userborn.service"
        ];
        # Restored host keys must be in place before sshd (or NixOS's
        # sshd-keygen) makes new ones; the sops-nix age key before sops
        # decrypts with it; and the console must stay ours until the prompt
        # is answered: systemd-user-sessions.service is what the gettys and
        # the wall agent (which stops the console agent) wait for.
        Before = [
          "sshd-keygen.service"
          "sshd.service"
          "systemd-user-sessions.service"
        ]
        # sops-nix and agenix as systemd units (sops.useSystemdActivation,
        # or agenix under systemd-sysusers/userborn): they decrypt with
        # the key the restore puts in place. In activation mode they run
        # before any unit; see the follow-up units (mkFollowUp) and
        # README.md, "sops-nix and agenix".
        ++ secretInstallers;
        # No blob (never bundled) or no UUID file: skip cleanly, boot on.
        ConditionPathExists = [
          c.blob
          c.usbUuidFile
        ];
        RequiresMountsFor = unique (
          [
            (dirOf c.blob)
            (dirOf c.usbUuidFile)
          ]
          ++ optionals (credentialMode && pp.credential != null) [ (dirOf pp.credential) ]
        );
        # Seconds, as NixOS's startLimitIntervalSec writes them: toNixos
        # hands both to NixOS's own options, so a host can override them
        # (lib.mkForce) without a conflict on unitConfig.
        StartLimitIntervalSec = 600;
        StartLimitBurst = 3;
      };

      service = {
        Type = "oneshot";
        # "active (exited)" after a restore, so that a second `systemctl
        # start` (a dependency, a rebuild) does not ask again. No cleanup is
        # left to ExecStopPost=: it does not run while a oneshot remains
        # active, so all cleanup (the consumed passphrase file, temporary
        # files) is in the program, on every exit path and on SIGTERM.
        # (Credential mode has an ExecStopPost=, see mkUnit: it only
        # reports a failed start.)
        #
        # Except in credential mode: systemd keeps a unit's decrypted
        # credentials in /run/credentials/<unit>/ until the unit stops, so
        # a unit that stayed active would keep the unsealed passphrase
        # until shutdown. It stops as soon as the restore exits instead; a
        # oneshot's start still completes only when ExecStart= has, so the
        # Before= units still wait for it, and a second start restores
        # again without asking anyone (the TPM unseals it), changing
        # nothing that is already in place.
        RemainAfterExit = !credentialMode;
        # The binary itself, no shell wrapper.
        ExecStart = escapeArgv argv;
        Restart = "on-failure";
        RestartSec = "5s";
        RestartPreventExitStatus = concatStringsSep " " (map toString noRestartExitStatuses);
        TimeoutStartSec = timeoutStartSec;

        ## Sandbox: as tight as a root writer of /etc and homes allows
        ## (`hardening`, shared with the re-bundle, and these).
        ReadWritePaths =
          writablePaths
          ++ optionals homeOutside [ userHome ]
          # The consumed passphrase file is unlinked, so its directory
          # must be writable. "-": if the directory is missing, the unit
          # still starts and zeta-creds says which input is missing (exit 6)
          # instead of systemd failing the namespace setup (226/NAMESPACE).
          ++ optionals fileMode [ ("-" + dirOf pp.file) ]
          # systemd-ask-password puts its ask.* file and reply socket here.
          ++ optionals interactive [ ("-" + askPasswordDir) ]
          ++ map (p: "-" + p) c.extraWritablePaths;
        StateDirectory = concatStringsSep " " stateDirectories;
        StateDirectoryMode = "0700";
        CapabilityBoundingSet = concatStringsSep " " capabilities;
      }
      // hardening
      // (
        if credentialMode && pp.credential != null then
          {
            # A `systemd-creds encrypt` file (TPM2 and/or host key): a
            # headless boot. systemd decrypts it to a private ramfs that
            # only this unit sees.
            LoadCredentialEncrypted = "passphrase:${pp.credential}";
          }
        else
          { }
      )
      // (
        if c.requireUsbPresent then
          {
            # PrivateDevices= hides the host's /dev; the stick is looked up
            # by name in /dev/disk/by-uuid, which is bound in read-only
            # (the bind shows entries that appear later, too).
            BindReadOnlyPaths = "-${usbDeviceDir}";
          }
        else
          { }
      );

      install = {
        # Wanted, not required: a failed restore (wrong passphrase, a prompt
        # nobody answered) fails this unit and the boot goes on to
        # multi-user.target. See README.md, "A prompt nobody answers".
        WantedBy = [ "multi-user.target" ];
      };
    in
    {
      inherit
        argv
        unit
        service
        install
        ;
    };

  # A unit file's text: [Unit], [Service] and, when it has one, [Install].
  renderUnit =
    name: unit: service: install:
    "# ${name}, rendered by nixos-modules/unit.nix\n"
    + renderSection "Unit" unitKeys unit
    + "\n"
    + renderSection "Service" serviceKeys service
    + (if install == { } then "" else "\n" + renderSection "Install" installKeys install);

  # The same unit in the shape of NixOS's systemd.services.<name>.
  toNixos = unit: service: install: {
    description = unit.Description;
    documentation = unit.Documentation;
    after = unit.After;
    before = unit.Before;
    wants = unit.Wants or [ ];
    wantedBy = install.WantedBy or [ ];
    # NixOS's own startLimitIntervalSec/startLimitBurst, not unitConfig:
    # NixOS writes those options into unitConfig itself, so a second
    # definition there conflicts with a host's override even under
    # lib.mkForce (nixos/lib/systemd-lib.nix, unitConfig).
    unitConfig = removeAttrs unit [
      "Description"
      "Documentation"
      "Wants"
      "After"
      "Before"
      "StartLimitIntervalSec"
      "StartLimitBurst"
    ];
    serviceConfig = service;
    # Run once per boot: a `nixos-rebuild switch` that changes the unit
    # must not restore (and ask for a passphrase) in the middle of the
    # switch. `systemctl restart zeta-creds-restore` does it by hand.
    restartIfChanged = false;
    stopIfChanged = false;
  }
  // (if unit ? StartLimitIntervalSec then { startLimitIntervalSec = unit.StartLimitIntervalSec; } else { })
  // (if unit ? StartLimitBurst then { startLimitBurst = unit.StartLimitBurst; } else { });

  mainName = "zeta-creds-restore.service";
  fallbackName = "zeta-creds-restore-fallback.service";
  checkName = "zeta-creds-restore-check.service";
  # Created by the check unit's ExecStopPost= when `restore --if-new
  # --check` said the blob is the one last restored (exit 0), removed on
  # any other outcome: the restore unit's negated condition. /run: gone at
  # reboot, so every boot checks afresh.
  alreadyRestoredMarker = "/run/zeta-creds-already-restored";

  # restoreOn = "new-blob": decide, before the restore unit starts, whether
  # it has anything to do, without unsealing or asking anything.
  #
  # Why a unit of its own and not ExecCondition= in the restore unit:
  # systemd sets a unit's credentials up (LoadCredentialEncrypted=: the TPM
  # unseals the passphrase) when it spawns the unit's first process, and
  # ExecCondition= is such a process. A condition inside the restore unit
  # would unseal the passphrase at every boot just to decide not to use
  # it. This unit has no credential and no passphrase source; it reads the
  # blob's header and the state record (`zeta-creds restore --if-new
  # --check`: exit 0 already restored, 10 a restore is needed), and its
  # ExecStopPost= turns the answer into the marker the restore unit's
  # ConditionPathExists=! reads. Any other outcome (an unreadable header,
  # no record, the check failing or not running at all) leaves no marker,
  # so the restore runs and decides as it always did: the check can only
  # ever skip a blob byte for byte identical to the one restored last.
  mkCheck =
    {
      cfg,
      binary,
      shell,
      core,
    }:
    let
      c = withDefaults cfg;
      argv = [
        binary
        "restore"
        "--blob"
        c.blob
        "--usb-uuid-file"
        c.usbUuidFile
        "--if-new"
        "--check"
      ];
      unit = {
        Description = "Check whether the zeta-creds blob is new (asks nothing, unseals nothing)";
        inherit (core.unit) Documentation After ConditionPathExists;
        Before = [ mainName ];
        # The state record, which the restore unit has as StateDirectory=.
        RequiresMountsFor = core.unit.RequiresMountsFor ++ [ "/var/lib/zeta-creds" ];
      };
      service = {
        Type = "oneshot";
        # Inactive again once it has run, so that a later start of the
        # restore unit (Wants=) checks again: after a re-bundle on the
        # running system, `systemctl start zeta-creds-restore` restores.
        RemainAfterExit = false;
        ExecStart = escapeArgv argv;
        # 10: "a restore is needed" is an answer, not a failure.
        SuccessExitStatus = "10";
        # "+": outside the sandbox, to write /run. It reads only
        # $EXIT_CODE and $EXIT_STATUS.
        ExecStopPost = "+" + escapeArgv [
          shell
          "-c"
          (
            "if [ \"$EXIT_CODE\" = exited ] && [ \"$EXIT_STATUS\" = 0 ]; then : >${alreadyRestoredMarker}; "
            # File mode: the passphrase staged for this boot's restore is
            # not needed; it does not stay in /run until the next reboot.
            + (
              if c.passphrase.mode == "file" && c.passphrase.file != null then
                "rm -f '${replaceStrings [ "'" ] [ "'\\''" ] c.passphrase.file}'; "
              else
                ""
            )
            + "else rm -f ${alreadyRestoredMarker}; fi"
          )
        ];
        TimeoutStartSec = "60";
        SyslogIdentifier = "zeta-creds";
        LimitCORE = 0;
        UMask = "0077";
        # The restore's sandbox, read-only: it writes nothing, needs no
        # capability but reading root's files, and has no credential.
        ProtectSystem = "strict";
        CapabilityBoundingSet = "CAP_DAC_READ_SEARCH";
      }
      // removeAttrs core.service [
        "Type"
        "RemainAfterExit"
        "ExecStart"
        "ExecStopPost"
        "Restart"
        "RestartSec"
        "RestartPreventExitStatus"
        "TimeoutStartSec"
        "SyslogIdentifier"
        "LoadCredentialEncrypted"
        "LimitMEMLOCK"
        "LimitCORE"
        "UMask"
        "ProtectSystem"
        "ReadWritePaths"
        "StateDirectory"
        "StateDirectoryMode"
        "BindReadOnlyPaths"
        "DeviceAllow"
        "CapabilityBoundingSet"
      ];
      install = { };
    in
    {
      name = checkName;
      inherit argv unit service install;
      text = renderUnit checkName unit service install;
      nixos = toNixos unit service install;
    };
  # Created by the restore unit's ExecStopPost= when systemd could not
  # decrypt the credential (and passphrase.credentialFallback is
  # "interactive"): the fallback unit's condition. /run: gone at reboot.
  credentialFailedMarker = "/run/zeta-creds-credential-failed";

  # What the journal and the console say when systemd could not decrypt
  # the sealed passphrase. systemd 252 itself only logs "Failed to set up
  # credentials: Protocol error" (for a missing file too) and status
  # 243/CREDENTIALS, before ExecStart= runs; these lines name the
  # credential, the likely causes, and the way back.
  # `rebundle`: the same lines for zeta-creds-rebundle.service, which
  # loads the same credential (the blob was left as it was; no fallback).
  credentialMessage =
    {
      cfg,
      argv,
      rebundle ? false,
    }:
    let
      c = withDefaults cfg;
      pp = c.passphrase;
      byHand = concatStringsSep " " ([ "zeta-creds" ] ++ builtins.tail argv);
    in
    [
      (
        "the sealed passphrase ${pp.credential} (LoadCredentialEncrypted=passphrase:${pp.credential}) could not be decrypted, so systemd did not start zeta-creds (status 243/CREDENTIALS) and "
        + (
          if rebundle then
            "nothing was re-bundled: the blob on the ESP was not touched, and it is not kept fresh until this is fixed."
          else
            "nothing was restored."
        )
      )
      "likely causes: the file is missing; it was sealed on another machine; or this machine's TPM2 no longer unseals it (the TPM was cleared or reset, or a firmware, Secure Boot or boot loader update changed the PCRs it is bound to)."
    ]
    ++ (
      if rebundle then
        [
          "to re-bundle now: run `${byHand}` as root on a terminal (it asks for the passphrase)."
        ]
      else if pp.credentialFallback == "interactive" then
        [
          "asking for the passphrase on the console instead (passphrase.credentialFallback = \"interactive\", ${fallbackName})."
        ]
      else
        [
          "to restore now: run `${byHand}` as root on a terminal (it asks for the passphrase), or boot with zeta.credsRestore.passphrase.mode = \"interactive\" (or passphrase.credentialFallback = \"interactive\")."
        ]
    )
    ++ [
      "then re-seal it on this machine: systemd-ask-password -n \"zeta-creds passphrase:\" | systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=7 --name=passphrase - ${pp.credential} (the PCRs you sealed with; installer: zeta-creds-step.sh --seal-tpm2)."
    ];

  # The ExecStopPost= script of credential mode. It runs after every stop
  # of the unit; only when systemd failed the start with 243/CREDENTIALS
  # (EXIT_CODE=exited, EXIT_STATUS=243: ExecStart= never ran) does it
  # print the message, to the journal at error level and to the console,
  # and, with the interactive fallback, leave the marker the fallback unit
  # needs. Any other stop removes the marker. A single-quoted word each, so
  # the message is never expanded by the shell.
  #
  # With `rebundle` (zeta-creds-rebundle.service): the journal only, no
  # console (nobody waits at it for a timer's unit), no marker.
  credentialFailureScript =
    {
      cfg,
      argv,
      rebundle ? false,
    }:
    let
      c = withDefaults cfg;
      fallback = c.passphrase.credentialFallback == "interactive";
      lines = credentialMessage { inherit cfg argv rebundle; };
      quote = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'";
      words = concatStringsSep " " (map quote lines);
    in
    if rebundle then
      "if [ \"$EXIT_CODE\" = exited ] && [ \"$EXIT_STATUS\" = 243 ]; then set -- ${words}; "
      + "for l; do printf '<3>%s\\n' \"$l\"; done; fi"
    else
      "if [ \"$EXIT_CODE\" = exited ] && [ \"$EXIT_STATUS\" = 243 ]; then set -- ${words}; "
      + "for l; do printf '<3>%s\\n' \"$l\"; printf 'zeta-creds-restore: %s\\n' \"$l\" 2>/dev/null >/dev/console || :; done; "
      + (if fallback then ": >${credentialFailedMarker}; " else "")
      + "else rm -f ${credentialFailedMarker}; fi";

  # A follow-up of the restore for a secret manager that decrypts in NixOS
  # activation (sops-nix without sops.useSystemdActivation; agenix with
  # scripted users): activation runs before any unit, so on the first boot
  # after an install it finds no key and installs nothing. This oneshot
  # runs the manager's own install step again once the restore (or its
  # fallback) has finished, only when `conditions` say that the activation
  # failed (e.g. no /run/secrets this boot) and, if `triggers` are given,
  # when at least one of them holds (e.g. a key file is now there). The
  # services that read the secrets (`consumers`) are ordered after it.
  #
  #   u.mkFollowUp {
  #     name = "zeta-creds-sops-nix";            # the unit, without .service
  #     description = "…";
  #     execStart = "/nix/store/…/bin/sops-install-secrets /nix/store/…-manifest.json";
  #     conditions = [ "!/run/secrets" ];      # ConditionPathExists=, ANDed
  #     triggers = [ "/var/lib/sops-nix/key.txt" ];  # ConditionPathExists=|…, ORed
  #     consumers = [ "myservice.service" ];   # Before=
  #   } => { name; unit; service; install; text; nixos; }
  mkFollowUp =
    {
      name,
      description,
      execStart,
      conditions ? [ ],
      triggers ? [ ],
      consumers ? [ ],
    }:
    let
      unitName = "${name}.service";
      unit = {
        Description = description;
        Documentation = [
          "https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md"
        ];
        # Both restore units: whichever ran has written the key by the
        # time it is done (ordering against a unit not in the transaction
        # is a no-op).
        After = [
          mainName
          fallbackName
        ];
        Before = consumers;
        ConditionPathExists = conditions ++ map (p: "|" + p) triggers;
      };
      service = {
        Type = "oneshot";
        RemainAfterExit = true;
        # The secret manager's own command, run as root unsandboxed as
        # its activation step is.
        ExecStart = execStart;
        SyslogIdentifier = name;
      };
      install = {
        WantedBy = [ "multi-user.target" ];
      };
    in
    {
      name = unitName;
      inherit unit service install;
      text = renderUnit unitName unit service install;
      nixos = toNixos unit service install;
    };

  rebundleName = "zeta-creds-rebundle.service";
  rebundleTimerName = "zeta-creds-rebundle.timer";
  rebundleShutdownName = "zeta-creds-rebundle-shutdown.service";
  # The login message a stale blob leaves (`rebundle --notice`): one line,
  # counts and date, no path, world-readable; removed once the blob is
  # fresh. /run: gone at reboot, written again by the next run. The module
  # prints it in login shells (environment.loginShellInit).
  # A directory of its own, not /run/zeta-creds (where a file-mode
  # passphrase is often staged): RuntimeDirectoryMode= makes it 0755.
  staleNotice = "/run/zeta-creds-notice/stale";
  # The manifest the module installs: what a re-bundle carries. Without
  # it there is nothing to re-bundle with.
  hostManifest = "/etc/zeta/creds-manifest.toml";
  # The state record: written by a restore that succeeded or a bundle on
  # this system. Without it there is nothing to compare with.
  stateRecord = "/var/lib/zeta-creds/state.json";

  # Whether the re-bundle seals (credential mode, rebundle.enable), as
  # opposed to only reporting.
  rebundleSeals =
    c:
    let
      pp = c.passphrase;
      wanted = if c.rebundle.enable == null then pp.mode == "credential" else c.rebundle.enable;
    in
    wanted && pp.mode == "credential" && pp.credential != null;

  # Keeping the blob fresh (issue 18): null when neither sealing nor
  # reporting is on, else
  #   { argv; seals;
  #     service;   # zeta-creds-rebundle.service: { name; unit; service; install; text; nixos; }
  #     timer;     # zeta-creds-rebundle.timer: { name; unit; timer; install; text; nixos; }
  #     shutdown;  # null (report only), or zeta-creds-rebundle-shutdown.service
  #   }
  #
  # The logic is in the binary (`zeta-creds rebundle`: the state record
  # against the disk, as `status`; nothing, a re-bundle, or one warning),
  # so the units are a schedule and a sandbox, no shell.
  mkRebundle =
    {
      cfg,
      binary,
      # systemctl, for the shutdown unit's ExecStop= (the module passes
      # the system's own).
      systemctl ? "systemctl",
      # The shell of the credential-failure report (as mkUnit's).
      shell ? "/bin/sh",
    }:
    let
      c = withDefaults cfg;
      pp = c.passphrase;
      seals = rebundleSeals c;
      argv = [
        binary
        "rebundle"
        "--blob"
        c.blob
        "--usb-uuid-file"
        c.usbUuidFile
        "--max-work-factor"
        (toString c.maxWorkFactor)
        "--notice"
        staleNotice
      ]
      ++ optionals (c.persona != null) [
        "--persona"
        c.persona
      ]
      # Interactive and file mode: nobody to type the passphrase, so only
      # the warning and the login message. The passphrase is never read.
      ++ optionals (!seals) [ "--report-only" ];

      unit = {
        Description =
          if seals then
            "Re-bundle the zeta-creds blob when carried credentials changed"
          else
            "Report carried credentials changed since the zeta-creds blob was sealed";
        Documentation = [
          "man:zeta-creds-rebundle(1)"
          "https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md"
        ];
        # Never while the restore is pending: after every restore unit
        # (ordering against one not in the transaction is a no-op). The
        # restore's own success marker is the state record naming the
        # blob on the ESP: the binary refuses any other blob (a restore
        # that failed or has not run yet), so a run that overtakes the
        # restore still seals nothing.
        After = [
          "local-fs.target"
          mainName
          fallbackName
          checkName
        ];
        Before = [ ];
        ConditionPathExists = [
          c.blob
          c.usbUuidFile
          hostManifest
          stateRecord
        ];
        RequiresMountsFor = unique (
          [
            (dirOf c.blob)
            (dirOf c.usbUuidFile)
          ]
          ++ optionals seals [ (dirOf pp.credential) ]
        );
      };

      # As tight as the restore's sandbox, minus what only a writer of
      # /etc and homes needs: it reads the carried files
      # (CAP_DAC_READ_SEARCH: they are the users' own, mode 0600) and
      # writes only the blob's directory and the state record.
      sandbox = hardening // {
        ProtectHome = "read-only";
        # The stale notice, kept when the unit stops, readable by logins.
        RuntimeDirectory = "zeta-creds-notice";
        RuntimeDirectoryMode = "0755";
        RuntimeDirectoryPreserve = true;
        CapabilityBoundingSet =
          if seals then "CAP_DAC_READ_SEARCH CAP_IPC_LOCK" else "CAP_DAC_READ_SEARCH";
      }
      // (
        if seals then
          {
            # The new blob beside the old one (and BLOB.prev), and the
            # state record it raises.
            ReadWritePaths = [ (dirOf c.blob) ];
            StateDirectory = "zeta-creds";
            StateDirectoryMode = "0700";
            # The same sealed passphrase as the restore; systemd decrypts
            # it when the unit's process starts, for this unit only. If it
            # cannot (a cleared TPM), the unit fails with 243/CREDENTIALS
            # before zeta-creds runs: the ESP is not touched.
            LoadCredentialEncrypted = "passphrase:${pp.credential}";
          }
        else
          { }
      );

      # Three key derivations at most (unlock, continue the generation,
      # seal), and reading the files.
      timeoutSecs = toString (3 * workMarginSecs);

      service = {
        Type = "oneshot";
        ExecStart = escapeArgv argv;
        # 10: stale and not re-bundled (reported, or a carried file
        # vanished): the warning is in the journal, the unit is not failed.
        SuccessExitStatus = "10";
        TimeoutStartSec = timeoutSecs;
      }
      // sandbox
      // (
        if seals then
          {
            # systemd says only "243/CREDENTIALS" when the TPM2 no longer
            # unseals the passphrase: the same lines as the restore's, to
            # the journal ("+": it reads only $EXIT_CODE and $EXIT_STATUS).
            ExecStopPost = "+" + escapeArgv [
              shell
              "-c"
              (credentialFailureScript {
                inherit cfg argv;
                rebundle = true;
              })
            ];
          }
        else
          { }
      );

      # Before shutdown or reboot, so that a reinstall starts from the
      # newest tokens: a oneshot that stays active (RemainAfterExit=) and
      # whose ExecStop= systemd runs when it stops the unit at shutdown
      # (systemd.service(5), ExecStop=; DefaultDependencies= adds
      # Conflicts= and Before=shutdown.target). Units stop in the reverse
      # of their start order, so it stops before the ESP and /var are
      # unmounted (After=, RequiresMountsFor=).
      #
      # Its ExecStop= starts zeta-creds-rebundle.service, the timer's own
      # unit, rather than re-bundling itself: systemd (252, tests/vm
      # scenario rb) decrypts a unit's credentials only for its start
      # commands, so an ExecStop= finds no passphrase, and a unit started
      # at boot to hold one would keep it unsealed in /run/credentials for
      # the whole uptime. --job-mode=ignore-dependencies: a start job
      # during shutdown would otherwise be refused (the unit conflicts
      # with shutdown.target); its ordering was satisfied at boot, and the
      # mounts it needs are held by this unit until it has stopped. The
      # re-bundle unit unseals the credential only while it runs, as at
      # any hour.
      shutdownUnit = unit // {
        Description = "Re-bundle the zeta-creds blob before shutdown when carried credentials changed";
        # At boot the record may not exist yet (the restore writes it);
        # the re-bundle unit checks it at shutdown.
        ConditionPathExists = [
          c.blob
          c.usbUuidFile
          hostManifest
        ];
      };
      shutdownService = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStop = escapeArgv [
          systemctl
          "start"
          "--job-mode=ignore-dependencies"
          rebundleName
        ];
        TimeoutStopSec = timeoutSecs;
        SyslogIdentifier = "zeta-creds";
      };
      shutdownInstall = {
        WantedBy = [ "multi-user.target" ];
      };

      timerUnit = {
        Description = "Keep the zeta-creds blob fresh, hourly";
        Documentation = [
          "man:zeta-creds-rebundle(1)"
          "https://github.com/zeta-creds/zeta-creds/blob/main/nixos-modules/README.md"
        ];
      };
      timer = {
        OnCalendar = "hourly";
        # Not all machines of a fleet at the full hour.
        RandomizedDelaySec = "15min";
        Persistent = false;
      };
      timerInstall = {
        WantedBy = [ "timers.target" ];
      };
      serviceInstall = { };
    in
    if !(seals || c.rebundle.report) then
      null
    else
      {
        inherit argv seals;
        service = {
          name = rebundleName;
          inherit unit service;
          install = serviceInstall;
          text = renderUnit rebundleName unit service serviceInstall;
          nixos = toNixos unit service serviceInstall;
        };
        timer = {
          name = rebundleTimerName;
          unit = timerUnit;
          inherit timer;
          install = timerInstall;
          text =
            "# ${rebundleTimerName}, rendered by nixos-modules/unit.nix\n"
            + renderSection "Unit" unitKeys timerUnit
            + "\n"
            + renderSection "Timer" timerKeys timer
            + "\n"
            + renderSection "Install" installKeys timerInstall;
          nixos = {
            description = timerUnit.Description;
            documentation = timerUnit.Documentation;
            wantedBy = timerInstall.WantedBy;
            timerConfig = timer;
          };
        };
        shutdown =
          if seals then
            {
              name = rebundleShutdownName;
              unit = shutdownUnit;
              service = shutdownService;
              install = shutdownInstall;
              text = renderUnit rebundleShutdownName shutdownUnit shutdownService shutdownInstall;
              nixos = toNixos shutdownUnit shutdownService shutdownInstall;
            }
          else
            null;
      };

  mkUnit =
    {
      cfg,
      binary,
      userHome ? null,
      # The shell of the credential-failure hook (ExecStopPost=); the NixOS
      # module passes pkgs.runtimeShell.
      shell ? "/bin/sh",
      # systemctl, for zeta-creds-rebundle-shutdown.service.
      systemctl ? "systemctl",
    }:
    let
      c = withDefaults cfg;
      pp = c.passphrase;
      credentialMode = pp.mode == "credential" && pp.credential != null;
      fallback = credentialMode && pp.credentialFallback == "interactive";
      newBlob = c.restoreOn == "new-blob";
      core = mkCore { inherit cfg binary userHome; };
      rebundle = mkRebundle {
        inherit
          cfg
          binary
          systemctl
          shell
          ;
      };
      inherit (core) argv install;
      check = mkCheck {
        inherit
          cfg
          binary
          shell
          core
          ;
      };

      unit =
        core.unit
        // (if fallback then { OnFailure = [ fallbackName ]; } else { })
        // (
          if newBlob then
            {
              # The check runs first, every time this unit is started.
              Wants = [ checkName ];
              After = core.unit.After ++ [ checkName ];
              ConditionPathExists = core.unit.ConditionPathExists ++ [ ("!" + alreadyRestoredMarker) ];
            }
          else
            { }
        );
      service =
        core.service
        // (
          if credentialMode then
            {
              # "+": outside the sandbox, so that it can write the console
              # and the marker. It reads only $EXIT_CODE and $EXIT_STATUS.
              ExecStopPost = "+" + escapeArgv [
                shell
                "-c"
                (credentialFailureScript { inherit cfg argv; })
              ];
              # "+" lifts the namespaces but not the unit's cgroup device
              # policy (closed, from PrivateDevices=): let the hook write
              # the console. ExecStart='s private /dev has no console node.
              DeviceAllow = "/dev/console w";
            }
          else if pp.mode == "file" && pp.file != null then
            {
              # The staged passphrase is for this start only. zeta-creds
              # consumes it once it has read it; a run refused before the
              # read (another stick, a bad header) leaves it, and this
              # removes it when the unit stops, so it does not stay in
              # /run until the next reboot. "+": the sandbox's /run is
              # read-only.
              ExecStopPost = "+" + escapeArgv [
                shell
                "-c"
                "rm -f '${replaceStrings [ "'" ] [ "'\\''" ] pp.file}'"
              ];
            }
          else
            { }
        );
      text = renderUnit mainName unit service install;

      # The interactive restore, started by OnFailure= only when the marker
      # says the credential could not be decrypted. Ordered before the same
      # units as the restore, so sshd, sops-nix and logins wait for it too
      # (systemd enqueues it in the same step that fails the restore's job).
      fallbackUnit =
        let
          fb = mkCore {
            cfg = cfg // {
              passphrase = (cfg.passphrase or { }) // {
                mode = "interactive";
              };
            };
            inherit binary userHome;
          };
          u = fb.unit // {
            Description = "Restore operator credentials, asking on the console (the sealed passphrase could not be decrypted)";
            After = fb.unit.After ++ [ mainName ];
            ConditionPathExists = fb.unit.ConditionPathExists ++ [ credentialFailedMarker ];
          };
        in
        {
          name = fallbackName;
          inherit (fb) argv service;
          unit = u;
          install = { };
          text = renderUnit fallbackName u fb.service { };
          nixos = toNixos u fb.service { };
        };
    in
    {
      name = mainName;
      inherit
        argv
        unit
        service
        install
        text
        ;
      nixos = toNixos unit service install;
      fallback = if fallback then fallbackUnit else null;
      check = if newBlob then check else null;
      inherit rebundle;
      # Every unit file the configuration needs, by name.
      units = {
        ${mainName} = text;
      }
      // (if fallback then { ${fallbackName} = fallbackUnit.text; } else { })
      // (if newBlob then { ${checkName} = check.text; } else { })
      // (
        if rebundle == null then
          { }
        else
          {
            ${rebundleName} = rebundle.service.text;
            ${rebundleTimerName} = rebundle.timer.text;
          }
          // (if rebundle.shutdown == null then { } else { ${rebundleShutdownName} = rebundle.shutdown.text; })
      );
      # The same, as NixOS's systemd.services.
      nixosServices = {
        zeta-creds-restore = toNixos unit service install;
      }
      // (if fallback then { zeta-creds-restore-fallback = fallbackUnit.nixos; } else { })
      // (if newBlob then { zeta-creds-restore-check = check.nixos; } else { })
      // (if rebundle == null then { } else { zeta-creds-rebundle = rebundle.service.nixos; })
      // (
        if rebundle == null || rebundle.shutdown == null then
          { }
        else
          { zeta-creds-rebundle-shutdown = rebundle.shutdown.nixos; }
      );
      # NixOS's systemd.timers.
      nixosTimers = if rebundle == null then { } else { zeta-creds-rebundle = rebundle.timer.nixos; };
    };
in
{
  inherit
    defaults
    passphraseModes
    credentialFallbacks
    credentialFailedMarker
    credentialMessage
    credentialFailureScript
    conflictPolicies
    restoreOns
    alreadyRestoredMarker
    minWorkFactor
    maxWorkFactor
    noRestartExitStatuses
    capabilities
    isStorePath
    isExternalPath
    isUserName
    isPersona
    withDefaults
    assertionsFor
    failedAssertions
    escapeWord
    escapeArgv
    mkUnit
    mkFollowUp
    mkRebundle
    rebundleSeals
    staleNotice
    secretInstallers
    ;
}
