package reconciler.yarn;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.util.concurrent.CountDownLatch;

import org.apache.curator.test.TestingServer;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

/**
 * Starts Hadoop's MiniYARNCluster (one ResourceManager, one NodeManager) with
 * the YARN Services REST API, for the YARN backend's tests.
 *
 * <p>Usage: {@code java -cp CONF:LIB/*:launcher.jar reconciler.yarn.Launcher WORK CONF}.
 * Everything binds to 127.0.0.1 on free ports; every file lives under WORK
 * (the local file system is fs.defaultFS, no HDFS); containers run as local
 * processes of this user. The cluster's configuration is written to
 * CONF/yarn-site.xml, which must be on the class path: in a mini cluster the
 * services' ApplicationMasters inherit this JVM's class path and read the
 * ResourceManager and registry addresses from there. When the API answers,
 * one line {@code RM_WEB http://127.0.0.1:PORT} goes to stdout. SIGTERM, or the
 * end of stdin (the parent went away), stops the cluster and its containers.
 */
public final class Launcher {

  private static final String HOST = "127.0.0.1";

  private Launcher() {
  }

  public static void main(String[] args) {
    try {
      run(args);
    } catch (Throwable e) {
      System.err.println("launcher failed:");
      e.printStackTrace();
      System.err.flush();
      Runtime.getRuntime().halt(1);
    }
  }

  private static void run(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: Launcher WORK_DIR CONF_DIR");
      System.exit(2);
    }
    File work = new File(args[0]).getAbsoluteFile();
    File confDir = new File(args[1]).getAbsoluteFile();
    Files.createDirectories(work.toPath());
    Files.createDirectories(confDir.toPath());
    // MiniYARNCluster and Hadoop's test utilities put their files here.
    System.setProperty("test.build.data", new File(work, "test-data").getPath());
    System.setProperty("hadoop.log.dir", new File(work, "logs").getPath());

    TestingServer zk = new TestingServer(freePort(), new File(work, "zk"), true);
    YarnConfiguration conf = configuration(work, zk.getConnectString());
    MiniYARNCluster cluster = new MiniYARNCluster("reconciler", 1, 1, 1, 1);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        cluster.stop();
        zk.close();
      } catch (IOException | RuntimeException e) {
        e.printStackTrace();
      }
      stopped.countDown();
    }));
    cluster.init(conf);
    cluster.start();
    waitForNodeManager(cluster);
    writeSite(cluster, new File(confDir, "yarn-site.xml"));
    System.out.println("RM_WEB http://" + cluster.getConfig().get(YarnConfiguration.RM_WEBAPP_ADDRESS));
    System.out.flush();
    exitWhenStdinCloses();
    stopped.await();
  }

  /** The parent keeps stdin open; when it goes away, so does the cluster. */
  private static void exitWhenStdinCloses() {
    Thread watch = new Thread(() -> {
      try {
        while (System.in.read() >= 0) {
          // keep reading until end of file
        }
      } catch (IOException e) {
        // treated as end of file
      }
      System.exit(0);
    }, "stdin-watch");
    watch.setDaemon(true);
    watch.start();
  }

  static YarnConfiguration configuration(File work, String zkAddress) throws IOException {
    YarnConfiguration conf = new YarnConfiguration();
    conf.set("fs.defaultFS", "file:///");
    conf.set("hadoop.tmp.dir", new File(work, "tmp").getPath());
    conf.set("yarn.log.dir", new File(work, "logs").getPath());
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_FIXED_PORTS, true);
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_USE_RPC, false);
    conf.set(YarnConfiguration.RM_HOSTNAME, HOST);
    conf.set(YarnConfiguration.RM_ADDRESS, address());
    conf.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, address());
    conf.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, address());
    conf.set(YarnConfiguration.RM_ADMIN_ADDRESS, address());
    conf.set(YarnConfiguration.RM_WEBAPP_ADDRESS, address());
    conf.set(YarnConfiguration.NM_ADDRESS, address());
    conf.set(YarnConfiguration.NM_LOCALIZER_ADDRESS, address());
    conf.set(YarnConfiguration.NM_WEBAPP_ADDRESS, address());
    conf.set(YarnConfiguration.NM_COLLECTOR_SERVICE_ADDRESS, address());
    conf.set("yarn.nodemanager.hostname", HOST);
    conf.set("yarn.nodemanager.bind-host", HOST);
    conf.set("yarn.resourcemanager.bind-host", HOST);

    // The Services REST API on the RM web app, with upgrades.
    conf.setBoolean("yarn.webapp.api-service.enable", true);
    conf.setBoolean("yarn.service.upgrade.enabled", true);
    conf.set("yarn.service.base.path", new File(work, "services").getPath());
    // Simple auth as a plain cluster has it: ?user.name= names the caller.
    conf.set("hadoop.http.filter.initializers",
        "org.apache.hadoop.security.AuthenticationFilterInitializer");
    conf.set("hadoop.http.authentication.type", "simple");
    conf.setBoolean("hadoop.http.authentication.simple.anonymous.allowed", false);
    conf.set("hadoop.http.authentication.signature.secret.file",
        writeSecret(new File(work, "http-secret")).getPath());

    // The services' registry lives in ZooKeeper.
    conf.set("hadoop.registry.zk.quorum", zkAddress);

    // Small, quick ApplicationMasters; room for many of them.
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 32);
    conf.setInt(YarnConfiguration.NM_PMEM_MB, 65536);
    conf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, 65536);
    conf.setInt(YarnConfiguration.NM_VCORES, 64);
    conf.setFloat("yarn.scheduler.capacity.maximum-am-resource-percent", 1.0f);
    conf.setLong("yarn.service.am-resource.memory", 256);
    conf.set("yarn.service.am.java.opts", amJavaOpts());
    conf.setLong("yarn.service.readiness-check-interval.seconds", 1);
    conf.setInt("yarn.service.am-restart.max-attempts", 1);
    conf.setLong(YarnConfiguration.RM_NM_HEARTBEAT_INTERVAL_MS, 200);
    conf.setLong(YarnConfiguration.DISPATCHER_DRAIN_EVENTS_TIMEOUT, 1000);
    conf.setLong(YarnConfiguration.DEBUG_NM_DELETE_DELAY_SEC, 0);

    // Containers are local processes: no memory checks, no aux services,
    // no timeline service. The containers monitor stays on: it is what gives
    // a container its IP, and the services' default readiness check waits
    // for one.
    conf.setBoolean(YarnConfiguration.YARN_MINICLUSTER_CONTROL_RESOURCE_MONITORING, true);
    conf.set(YarnConfiguration.NM_CONTAINER_MON_RESOURCE_CALCULATOR,
        "org.apache.hadoop.yarn.util.LinuxResourceCalculatorPlugin");
    conf.set(YarnConfiguration.NM_CONTAINER_MON_PROCESS_TREE,
        "org.apache.hadoop.yarn.util.ProcfsBasedProcessTree");
    conf.setLong(YarnConfiguration.NM_CONTAINER_MON_INTERVAL_MS, 500);
    conf.set(YarnConfiguration.NM_AUX_SERVICES, "");
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
    conf.setBoolean(YarnConfiguration.TIMELINE_SERVICE_ENABLED, false);
    conf.setBoolean(YarnConfiguration.SYSTEM_METRICS_PUBLISHER_ENABLED, false);
    conf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 100.0f);
    return conf;
  }

  /** The JVM options of a service's ApplicationMaster on Java 17. */
  private static String amJavaOpts() {
    return "-Xmx200m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"
        + " --add-opens=java.base/java.lang=ALL-UNNAMED"
        + " --add-opens=java.base/java.util=ALL-UNNAMED"
        + " --add-opens=java.base/java.lang.reflect=ALL-UNNAMED"
        + " --add-opens=java.base/java.net=ALL-UNNAMED"
        + " --add-opens=java.base/java.io=ALL-UNNAMED"
        + " --add-opens=java.base/java.nio=ALL-UNNAMED"
        + " --add-opens=java.base/sun.nio.ch=ALL-UNNAMED";
  }

  private static File writeSecret(File file) throws IOException {
    Files.writeString(file.toPath(), Long.toHexString(System.nanoTime()) + "reconciler");
    return file;
  }

  private static void waitForNodeManager(MiniYARNCluster cluster) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 120_000;
    while (cluster.getResourceManager().getRMContext().getRMNodes().isEmpty()) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("no NodeManager registered within 120 s");
      }
      Thread.sleep(100);
    }
  }

  private static void writeSite(MiniYARNCluster cluster, File site) throws IOException {
    File tmp = new File(site.getPath() + ".tmp");
    try (OutputStream out = new FileOutputStream(tmp)) {
      cluster.getConfig().writeXml(out);
    }
    Files.move(tmp.toPath(), site.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
  }

  private static String address() throws IOException {
    return HOST + ":" + freePort();
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket()) {
      socket.setReuseAddress(true);
      socket.bind(new InetSocketAddress(HOST, 0));
      return socket.getLocalPort();
    }
  }
}
