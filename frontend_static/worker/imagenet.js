// Entry of the ImageNet-style task page.
import { mount } from "./imagenet/page.js";
import { startTaskPage } from "./task_page.js";

startTaskPage({ mount });
