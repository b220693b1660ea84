/*
 * Mosquitto 2.0 plugin: retained publishes only on the topics named in the
 * configuration (the fleet's model topic, the boards' key wrap and status
 * topics), from anyone the ACL lets write them.
 *
 * Mosquitto's acl_file grants "write" with or without the retain flag, and
 * retain_available is broker-wide, so without this plugin a board could retain
 * a message on its own update topic: the broker would keep it for ever and
 * hand it to the aggregator on every (re)subscription. This plugin refuses
 * such a PUBLISH as an ACL denial (MQTT 3.1.1: acknowledged and dropped, MQTT
 * 5: "not authorized"); every other decision is left to acl_file.
 *
 *   plugin /usr/local/lib/edge/mosquitto_edge_retain.so
 *   plugin_opt_retain_topic edge/v1/<fleet>/model
 *   plugin_opt_retain_status_topic edge/v1/<fleet>/devices/+/status
 *   plugin_opt_retain_wrap_topic edge/v1/<fleet>/devices/+/wrap
 *   plugin_opt_retain_cohort_topic edge/v1/<fleet>/cohort/#   (scale-out only)
 *
 * Each option holds one topic filter (+ and # allowed) and is given at most
 * once; without either, no client may retain anything. The status filter is
 * for presence (docs/broker.md): a board's retained online/offline message
 * and its last will; acl_file still decides who writes which status topic.
 * The wrap filter is for each board's key wrap of the current package
 * (docs/protocol.md), which only the aggregator may write. Built by the top-level Makefile
 * (build/host/mosquitto_edge_retain.so) against Debian's mosquitto-dev.
 */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

static const char *const retain_options[] = {"retain_topic", "retain_status_topic",
					     "retain_wrap_topic", "retain_cohort_topic"};
#define RETAIN_OPTIONS (sizeof(retain_options) / sizeof(retain_options[0]))

static mosquitto_plugin_id_t *plugin_id;
static char *retain_filter[RETAIN_OPTIONS];

static int on_acl_check(int event, void *event_data, void *userdata)
{
	const struct mosquitto_evt_acl_check *ed = event_data;
	bool allowed = false;

	(void)event;
	(void)userdata;
	/* Deliveries and subscriptions carry retained messages too: only a
	 * client's own PUBLISH with the retain flag is ours to judge. */
	if (ed->access != MOSQ_ACL_WRITE || !ed->retain)
		return MOSQ_ERR_PLUGIN_DEFER;
	for (size_t i = 0; i < RETAIN_OPTIONS; i++) {
		bool match = false;

		if (retain_filter[i] &&
		    mosquitto_topic_matches_sub(retain_filter[i], ed->topic, &match) == MOSQ_ERR_SUCCESS &&
		    match)
			allowed = true;
	}
	if (allowed)
		return MOSQ_ERR_PLUGIN_DEFER;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "edge_retain: denied retained PUBLISH from %s to %s",
			     mosquitto_client_id(ed->client), ed->topic);
	return MOSQ_ERR_ACL_DENIED;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	plugin_id = identifier;
	for (int i = 0; i < option_count; i++) {
		size_t k = 0;

		while (k < RETAIN_OPTIONS && strcmp(options[i].key, retain_options[k]) != 0)
			k++;
		if (k == RETAIN_OPTIONS) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "edge_retain: unknown option plugin_opt_%s",
					     options[i].key);
			return MOSQ_ERR_INVAL;
		}
		if (retain_filter[k] || mosquitto_sub_topic_check(options[i].value) != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
					     "edge_retain: plugin_opt_%s must be given once, as a valid "
					     "topic filter", retain_options[k]);
			return MOSQ_ERR_INVAL;
		}
		retain_filter[k] = strdup(options[i].value);
		if (!retain_filter[k])
			return MOSQ_ERR_NOMEM;
	}
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	for (size_t i = 0; i < RETAIN_OPTIONS; i++) {
		free(retain_filter[i]);
		retain_filter[i] = NULL;
	}
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
}
